import { listInstalled } from '@clp/engine';
import { table, when } from '../admin/table.ts';
import { printResult } from '../output.ts';
import { logFor } from './engine-output.ts';
import type { RegisterCommand } from './index.ts';

export const list: RegisterCommand = (program, globals) =>
  program
    .command('list')
    .description('list the installed patches (times are local; --json gives them in UTC)')
    .action(async () => {
      const g = globals();
      const installed = await listInstalled({ root: g.root, ...(logFor(g) ? { log: logFor(g) } : {}) });
      printResult(g, installed, () =>
        installed.length === 0
          ? 'no patches installed'
          : table(
              ['NAME', 'SERIES', 'VERSION', 'INSTALLED', 'SIGNED BY', 'DESCRIPTION'],
              installed.map((p) => [
                p.name,
                p.series,
                p.version,
                when(p.installedAt),
                p.signedBy ?? 'UNSIGNED',
                p.description ?? '',
              ]),
            ),
      );
    });
