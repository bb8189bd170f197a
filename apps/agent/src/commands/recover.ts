import { recover } from '@clp/engine';
import { printResult } from '../output.ts';
import { logFor } from './engine-output.ts';
import type { RegisterCommand } from './index.ts';

export const recoverCommand: RegisterCommand = (program, globals) =>
  program
    .command('recover')
    .description(
      'finish or roll back a transaction interrupted by a crash (every command also does this first)',
    )
    .action(async () => {
      const g = globals();
      const result = await recover({ root: g.root, ...(logFor(g) ? { log: logFor(g) } : {}) });
      printResult(g, result, () => {
        switch (result.action) {
          case 'nothing':
            return 'nothing to recover';
          case 'rolled-back':
            return `the interrupted ${result.op} of ${result.patch} was rolled back; the system is as before it`;
          case 'finished':
            return `the interrupted ${result.op} of ${result.patch} had passed its commit point and was finished`;
        }
      });
    });
