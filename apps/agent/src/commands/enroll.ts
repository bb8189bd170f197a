import { localEngine } from '../fleet/engine-adapter.ts';
import { note, printResult } from '../output.ts';
import type { RegisterCommand } from './index.ts';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export const enroll: RegisterCommand = (program, globals) =>
  program
    .command('enroll')
    .description(
      'enroll this machine with a server using a one-time token; writes ROOT/etc/clp/agent.json (0600)',
    )
    .argument('<url>', 'server base URL, e.g. https://clp.example.org')
    .argument('<token>', 'enrollment token made by an operator')
    .option(
      '--tag <key=value>',
      'ask for a tag (repeatable); the token may add more',
      collect,
      [] as string[],
    )
    .option('--force', 'enroll again although this machine already has a credential', false)
    .action(async (url: string, token: string, options: { tag: string[]; force: boolean }) => {
      const g = globals();
      // Loaded on use: the HTTP client is most of the program and other commands do not need it.
      const { enrollMachine } = await import('../fleet/enroll.ts');
      const result = await enrollMachine({
        root: g.root,
        url,
        token,
        tags: options.tag,
        force: options.force,
        engine: localEngine,
        log: g.verbose ? note : undefined,
      });
      printResult(g, result, () =>
        [
          `enrolled as ${result.machineId}`,
          `tier        ${result.tier}`,
          `tags        ${result.tags.join(', ') || '(none)'}`,
          `servers     ${result.servers.join(', ')}`,
          `config      ${result.configFile}`,
          "next        'clpctl update' checks now; the core-livepatch-update.timer or 'clpctl daemon' checks daily",
        ].join('\n'),
      );
    });
