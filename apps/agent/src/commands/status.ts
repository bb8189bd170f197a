import { engineStatus } from '@clp/engine';
import { whenExact } from '../admin/table.ts';
import { printResult } from '../output.ts';
import { logFor, recoveredNote } from './engine-output.ts';
import type { RegisterCommand } from './index.ts';

export const status: RegisterCommand = (program, globals) =>
  program
    .command('status')
    .description('the state of this machine: installed and failed patches, last event, trusted keys')
    .action(async () => {
      const g = globals();
      const s = await engineStatus({ root: g.root, ...(logFor(g) ? { log: logFor(g) } : {}) });
      if (!g.json) recoveredNote(s.recovered);
      printResult(g, s, () =>
        [
          `root          ${s.root}`,
          `installed     ${s.installed.length === 0 ? '(none)' : s.installed.map((p) => p.name).join(', ')}`,
          `failed here   ${s.failed.length === 0 ? '(none)' : s.failed.map((f) => `${f.name} (${f.code})`).join(', ')}`,
          `last event    ${s.lastEvent ? `${whenExact(s.lastEvent.at)} ${s.lastEvent.op} ${s.lastEvent.name}: ${s.lastEvent.result}` : '(none)'}`,
          `trusted keys  ${s.trustedKeys}`,
          `log           ${s.log}`,
        ].join('\n'),
      );
    });
