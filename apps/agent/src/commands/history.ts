import { readHistory } from '@clp/engine';
import { table, whenExact } from '../admin/table.ts';
import { printResult } from '../output.ts';
import { logFor } from './engine-output.ts';
import type { RegisterCommand } from './index.ts';

export const history: RegisterCommand = (program, globals) =>
  program
    .command('history')
    .description('every install, uninstall, refusal and recovery on this machine, oldest first')
    .action(async () => {
      const g = globals();
      const entries = await readHistory({ root: g.root, ...(logFor(g) ? { log: logFor(g) } : {}) });
      printResult(g, entries, () =>
        entries.length === 0
          ? 'no history yet'
          : table(
              ['AT', 'WHAT', 'PATCH', 'RESULT'],
              entries.map((e) => [
                whenExact(e.at),
                e.op,
                e.name,
                `${e.result}${e.code ? ` (${e.code})` : ''}`,
              ]),
            ),
      );
    });
