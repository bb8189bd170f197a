import { spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { AdminError } from './errors.ts';

/** Turns the terminal's echo off or on again (stty on the controlling terminal). */
function echo(on: boolean): void {
  spawnSync('stty', [on ? 'echo' : '-echo'], { stdio: ['inherit', 'ignore', 'ignore'] });
}

/**
 * Reads passwords one per line from stdin, never from the command line (where `ps` and the shell
 * history would show them). On a terminal each is asked for by its prompt, on stderr, unechoed;
 * from a pipe the lines are read in order (`printf '%s\n' "$OLD" "$NEW" | clpctl admin …`).
 */
export async function readPasswords(prompts: readonly string[], input = process.stdin): Promise<string[]> {
  const tty = Boolean(input.isTTY);
  const lines = createInterface({ input, terminal: false });
  const iterator = lines[Symbol.asyncIterator]();
  const answers: string[] = [];
  if (tty) echo(false);
  try {
    for (const prompt of prompts) {
      if (tty) process.stderr.write(`${prompt}: `);
      const next = await iterator.next();
      if (tty) process.stderr.write('\n');
      if (next.done) {
        throw new AdminError(
          'CLP_E_ADMIN_BAD_OPTION',
          `stdin ended before the ${prompt.toLowerCase()}; give one password per line`,
        );
      }
      answers.push(String(next.value));
    }
  } finally {
    if (tty) echo(true);
    lines.close();
  }
  return answers;
}
