import { resolve } from 'node:path';
import { scaffoldPatch } from '../authoring/scaffold.ts';
import { printResult } from '../output.ts';
import type { RegisterCommand } from './index.ts';

export const newPatch: RegisterCommand = (program, globals) =>
  program
    .command('new')
    .description('make a patch folder NAME/ with a commented PKGINFO.meta and an empty payload/')
    .argument('<name>', 'the patch name: CLP + revision + YYMMDD, e.g. CLP1251201')
    .option('--dir <dir>', 'the folder to make (default: NAME in the current folder)')
    .action(async (name: string, options: { dir?: string }) => {
      const made = await scaffoldPatch(name, resolve(options.dir ?? name));
      printResult(globals(), { name, ...made }, () =>
        [
          `made ${made.dir}/ with ${made.files.join(' and ')}`,
          `next: copy the new files into payload/, say in PKGINFO.meta what the patch does with them, then 'clpctl create ${options.dir ?? name} --sign KEY' (with --expect-from ROOT, what each replaced file must be is taken from ROOT)`,
        ].join('\n'),
      );
    });
