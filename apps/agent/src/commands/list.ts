import { listInstalled } from '@clp/engine';
import { printResult } from '../output.ts';
import { logFor } from './engine-output.ts';
import type { RegisterCommand } from './index.ts';

export const list: RegisterCommand = (program, globals) =>
  program
    .command('list')
    .description('list the installed patches')
    .action(async () => {
      const g = globals();
      const installed = await listInstalled({ root: g.root, ...(logFor(g) ? { log: logFor(g) } : {}) });
      printResult(g, installed, () =>
        installed.length === 0
          ? 'no patches installed'
          : installed
              .map((p) =>
                `${p.name}  ${p.series}  v${p.version}  ${p.installedAt}  ${p.signedBy ?? 'UNSIGNED'}  ${p.description ?? ''}`.trimEnd(),
              )
              .join('\n'),
      );
    });
