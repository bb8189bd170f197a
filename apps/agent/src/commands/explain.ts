import { resolve } from 'node:path';
import { explainPatch } from '@clp/engine';
import { EXIT } from '../exit-codes.ts';
import { printResult } from '../output.ts';
import { requireFile } from './authoring.ts';
import { logFor } from './engine-output.ts';
import type { RegisterCommand } from './index.ts';

export const explain: RegisterCommand = (program, globals) =>
  program
    .command('explain')
    .description('every rule that would stop a patch here, all at once, without changing anything')
    .argument('<file>', 'the .clp patch')
    .option('--insecure', 'leave the signature out of the assessment', false)
    .option('--package-manager <name>', "pacman or dpkg (default: the root's own)")
    .option('--force', 'as install --force: ignore an earlier failure here', false)
    .option('--allow-http', "as install --allow-http: a package action's plain http:// URL is allowed", false)
    .action(
      async (
        file: string,
        flags: { insecure: boolean; packageManager?: string; force: boolean; allowHttp: boolean },
      ) => {
        const g = globals();
        const input = resolve(file);
        await requireFile(input, 'patch file');
        const e = await explainPatch(input, {
          root: g.root,
          insecure: flags.insecure,
          force: flags.force,
          runScriptsOnHost: g.runScriptsOnHost,
          allowHttp: flags.allowHttp,
          ...(flags.packageManager !== undefined ? { packageManager: flags.packageManager } : {}),
          ...(logFor(g) ? { log: logFor(g) } : {}),
        });
        printResult(g, e, () =>
          e.applies
            ? [`${e.name} applies here; installing it would:`, ...e.plan.map((p) => `  ${p}`)].join('\n')
            : [
                `${e.name} does not apply here (${e.refusals.length} reason${e.refusals.length === 1 ? '' : 's'}):`,
                ...e.refusals.map((r) => `  - [${r.rule}] ${r.code}: ${r.message}`),
              ].join('\n'),
        );
        if (!e.applies) process.exitCode = EXIT.notApplicable;
      },
    );
