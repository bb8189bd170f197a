import { revertPackage } from '@clp/engine';
import { note, printResult } from '../output.ts';
import { recoveredNote } from './engine-output.ts';
import type { RegisterCommand } from './index.ts';

interface RevertFlags {
  packageManager?: string;
  file?: string;
  allowIrreversible?: boolean;
}

/** `clpctl pkg revert PACKAGE VERSION`: a package step on its own, with the previous version kept. */
export const pkg: RegisterCommand = (program, globals) => {
  const group = program.command('pkg').description('package actions outside a patch');
  group
    .command('revert')
    .description(
      "set an installed package to VERSION from the local package cache (or --file), as one transaction (journaled, finished or rolled back by recover, in history); the current version's package file is kept so that it can be put back",
    )
    .argument('<package>', 'package name')
    .argument(
      '<version>',
      'version to set, as the package manager writes it (e.g. 550.78-1); without its release number (550.78) when only one such version is at hand',
    )
    .option('--package-manager <name>', "pacman or dpkg (default: the root's own, from os-release)")
    .option('--file <package-file>', 'install this package file instead of looking in the cache')
    .option(
      '--allow-irreversible',
      'go ahead even when the current version cannot be kept for going back',
      false,
    )
    .exitOverride()
    .action(async (name: string, version: string, flags: RevertFlags) => {
      const g = globals();
      const result = await revertPackage({
        root: g.root,
        name,
        version,
        ...(flags.packageManager === undefined ? {} : { packageManager: flags.packageManager }),
        ...(flags.file === undefined ? {} : { file: flags.file }),
        allowIrreversible: flags.allowIrreversible ?? false,
        ...(g.verbose && !g.json ? { log: (line: string) => note(line) } : {}),
      });
      if (!g.json) recoveredNote(result.recovered);
      printResult(g, result, () => {
        const lines: string[] = [];
        if (!result.changed) {
          lines.push(`${name} is already at ${version} (${result.packageManager}); nothing changed`);
          return lines.join('\n');
        }
        lines.push(
          `${name} ${result.fromVersion ?? '(not installed)'} -> ${version} (${result.packageManager}, from ${result.origin} ${result.packageFile})`,
        );
        if (result.keptFile !== null) {
          lines.push(`previous version kept: ${result.keptFile}`);
          lines.push(`to go back: clpctl pkg revert ${name} ${result.fromVersion}`);
        } else if (result.fromVersion === null) {
          lines.push(`${name} was not installed before; remove it with your package manager to go back`);
        } else {
          lines.push(
            `warning: ${name} ${result.fromVersion} could not be kept; this change cannot be taken back by clpctl`,
          );
        }
        return lines.join('\n');
      });
    });
  return group;
};
