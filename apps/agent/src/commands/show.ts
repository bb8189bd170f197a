import { getPatch } from '@clp/engine';
import { when } from '../admin/table.ts';
import { printResult } from '../output.ts';
import { logFor } from './engine-output.ts';
import type { RegisterCommand } from './index.ts';

export const show: RegisterCommand = (program, globals) =>
  program
    .command('show')
    .description('an installed patch: its metadata and the steps it took')
    .argument('<name>', 'the installed patch, e.g. CLP1251123')
    .action(async (name: string) => {
      const g = globals();
      const record = await getPatch(name, { root: g.root, ...(logFor(g) ? { log: logFor(g) } : {}) });
      const s = record.summary;
      printResult(g, record, () =>
        [
          `${s.name}  series ${s.series}  version ${s.version}  ${s.architecture}`,
          ...(s.description ? [s.description] : []),
          `installed ${when(s.installedAt)}, signed by ${s.signedBy ?? 'nobody (--insecure)'}`,
          'steps:',
          ...record.steps.map((r) => `  ${r.index + 1}. ${r.description}`),
        ].join('\n'),
      );
    });
