import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CommandDoc, describeCommand, helpOutput } from '../src/docs/command-tree.ts';
import { bashCompletion, fishCompletion, zshCompletion } from '../src/docs/completion.ts';
import { generatedDocs } from '../src/docs/generate.ts';
import { manPages, roff } from '../src/docs/man-page.ts';
import { buildProgram } from '../src/program.ts';

function has(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`]).status === 0;
}
for (const tool of ['zsh', 'fish', 'groff']) if (!has(tool)) console.warn(`skipped: needs ${tool}`);

function walk(command: Command, parents: string[] = []): Array<{ command: Command; path: string[] }> {
  const path = [...parents, command.name()];
  return [{ command, path }, ...command.commands.flatMap((c) => walk(c, path))];
}

/** The page a command is documented on: its top-level group's, or clpctl(8). */
function pageFor(path: string[], pages: Map<string, string>): string {
  const group = path.length > 1 ? pages.get(`clpctl-${path[1]}.8`) : undefined;
  return group ?? pages.get('clpctl.8')!;
}

describe('man pages and completions come from the command tree that --help prints', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'clp-docs-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('every option, argument and help text that --help shows for every command is on its man page', () => {
    const program = buildProgram();
    const pages = new Map(manPages(describeCommand(program), '0.0.0').map((p) => [p.file, p.text]));
    const help = program.createHelp();
    let checked = 0;
    for (const { command, path } of walk(program)) {
      if (command.name() === 'help') continue;
      const page = pageFor(path, pages);
      const shown = helpOutput(command);
      // A command with subcommands of its own (clpctl admin) is described on its group page.
      if (path.length === 2 && command.commands.length > 0)
        expect(pages.has(`clpctl-${path[1]}.8`)).toBe(true);
      else expect(page, path.join(' ')).toContain(roff(`${path.join(' ')} ${command.usage()}`.trim()));
      for (const option of help.visibleOptions(command)) {
        expect(shown).toContain(help.optionTerm(option));
        expect(page, `${path.join(' ')} ${option.flags}`).toContain(roff(help.optionTerm(option)));
        expect(page, `${path.join(' ')} ${option.flags}`).toContain(roff(help.optionDescription(option)));
        checked++;
      }
      for (const argument of help.visibleArguments(command)) {
        expect(page).toContain(roff(help.argumentDescription(argument)));
      }
      const extra = describeCommand(command, path.slice(0, -1)).extraHelp;
      if (extra !== '') {
        expect(shown).toContain(extra);
        expect(page, `${path.join(' ')}: help text after the options`).toContain(roff(extra));
      }
    }
    expect(checked).toBeGreaterThan(50);
  });

  it('a command added to the tree appears on the man pages and in every completion by itself', () => {
    const program = buildProgram();
    program
      .command('frobnicate')
      .description('a command nobody wrote docs for')
      .option('--wobble <n>', 'how much to wobble');
    const admin = program.commands.find((c) => c.name() === 'admin')!;
    admin.command('rekey-everything').description('a new admin command').option('--dry-run', 'only say');
    const files = new Map(generatedDocs(program, '9.9.9').map((f) => [f.path, f.text]));
    expect(files.get('man/man8/clpctl.8')).toContain('clpctl frobnicate');
    expect(files.get('man/man8/clpctl.8')).toContain('\\-\\-wobble <n>');
    expect(files.get('man/man8/clpctl-admin.8')).toContain('clpctl admin rekey\\-everything');
    for (const path of [
      'bash-completion/completions/clpctl',
      'zsh/vendor-completions/_clpctl',
      'fish/vendor_completions.d/clpctl.fish',
    ]) {
      expect(files.get(path), path).toContain('frobnicate');
      expect(files.get(path), path).toMatch(path.includes('fish') ? /-l wobble/ : /--wobble/);
      expect(files.get(path), path).toContain('rekey-everything');
    }
  });

  it('bash completes commands, subcommands and options along the path typed so far', async () => {
    const file = join(dir, 'clpctl.bash');
    await writeFile(file, bashCompletion(describeCommand(buildProgram())));
    const complete = (words: string[]) => {
      const script = `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _clpctl; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.split('\n').filter(Boolean);
    };
    expect(complete(['clpctl', 'sta'])).toEqual(['status']);
    expect(complete(['clpctl', '--root', '/m', 'admin', 'rollout', 'cr'])).toEqual(['create']);
    expect(complete(['clpctl', 'install', '--for'])).toEqual(['--force']);
    expect(complete(['clpctl', 'config', ''])).toEqual(expect.arrayContaining(['get', 'set']));
  });

  it.skipIf(!has('zsh') || !has('fish'))(
    'the zsh and fish completions parse, and fish completes along the path',
    async () => {
      const tree: CommandDoc = describeCommand(buildProgram());
      const zsh = join(dir, '_clpctl');
      const fish = join(dir, 'clpctl.fish');
      await writeFile(zsh, zshCompletion(tree));
      await writeFile(fish, fishCompletion(tree));
      const z = spawnSync('zsh', ['-n', zsh], { encoding: 'utf8' });
      expect(z.status, z.stderr).toBe(0);
      const f = spawnSync(
        'fish',
        ['-c', `source ${fish}; complete -C 'clpctl admin rollout cr'; complete -C 'clpctl install --for'`],
        {
          encoding: 'utf8',
        },
      );
      expect(f.status, f.stderr).toBe(0);
      expect(f.stdout).toMatch(/^create\tstart a staged rollout/m);
      expect(f.stdout).toMatch(/^--force\t/m);
    },
  );

  it.skipIf(!has('groff'))('groff reads every page without a warning', async () => {
    for (const page of manPages(describeCommand(buildProgram()), '0.1.0')) {
      const file = join(dir, page.file);
      await writeFile(file, page.text);
      const r = spawnSync('groff', ['-man', '-ww', '-z', file], { encoding: 'utf8' });
      expect(r.stderr, page.file).toBe('');
      expect(r.status).toBe(0);
    }
  });
});
