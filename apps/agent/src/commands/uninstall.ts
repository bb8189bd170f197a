import { uninstallPatch } from '@clp/engine';
import { printResult } from '../output.ts';
import { logFor, progressFor } from './engine-output.ts';
import type { RegisterCommand } from './index.ts';

export const uninstall: RegisterCommand = (program, globals) =>
  program
    .command('uninstall')
    .alias('rollback')
    .description('take an installed patch back: its files, packages and services as they were before it')
    .argument('<name>', 'the installed patch, e.g. CLP1251123')
    .option('--force', 'put the files back even where they changed since the install (drift)', false)
    .action(async (name: string, flags: { force: boolean }) => {
      const g = globals();
      const result = await uninstallPatch(name, {
        root: g.root,
        force: flags.force,
        runScriptsOnHost: g.runScriptsOnHost,
        ...(logFor(g) ? { log: logFor(g) } : {}),
        ...(progressFor(g) ? { progress: progressFor(g) } : {}),
      });
      printResult(g, result, () =>
        [
          `uninstalled ${result.name} from ${result.root}`,
          ...result.steps.map((s) => `  ${s.description}`),
          ...result.drift.map((d) => `overwrote drift (--force): ${d.path} ${d.problem}`),
        ].join('\n'),
      );
    });
