import { resolve } from 'node:path';
import { installPatch } from '@clp/engine';
import { ClpError } from '@clp/format';
import { note, printResult } from '../output.ts';
import { requireFile } from './authoring.ts';
import { logFor, progressFor, recoveredNote } from './engine-output.ts';
import type { RegisterCommand } from './index.ts';

interface InstallFlags {
  insecure: boolean;
  allowIrreversible: boolean;
  packageManager?: string;
  force: boolean;
  retry: boolean;
  allowHttp: boolean;
  maxDownloadSize?: number;
}

const UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
};

/** `--max-download-size 512MiB`: bytes, or KiB, MiB, GiB (also K, M, G). */
function downloadSize(text: string): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  const bytes = m && unit !== undefined ? Number(m[1]) * unit : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0)
    throw new ClpError(
      'CLP_E_USAGE',
      `--max-download-size ${text} is not a size: write bytes, or KiB, MiB, GiB (e.g. 512MiB)`,
    );
  return bytes;
}

export const install: RegisterCommand = (program, globals) =>
  program
    .command('install')
    .description(
      'install a signed .clp patch as one transaction (verified, checked, rolled back on any failure)',
    )
    .argument('<file>', 'the .clp patch')
    .option('--insecure', 'skip the signature check (local development only; loud about it)', false)
    .option('--allow-irreversible', 'go ahead when a package change cannot be taken back', false)
    .option('--package-manager <name>', "pacman or dpkg (default: the root's own)")
    .option('--force', 'install a patch that failed on this machine before', false)
    .option('--retry', 'the same as --force', false)
    .option(
      '--allow-http',
      "fetch a package action's plain http:// URL (its signed sha256 still decides); otherwise only https://",
      false,
    )
    .option(
      '--max-download-size <size>',
      'the most a package download may be when its action names no size (default 1GiB)',
      downloadSize,
    )
    .action(async (file: string, flags: InstallFlags) => {
      const g = globals();
      const input = resolve(file);
      await requireFile(input, 'patch file');
      const result = await installPatch(input, {
        root: g.root,
        insecure: flags.insecure,
        allowIrreversible: flags.allowIrreversible,
        force: flags.force || flags.retry,
        runScriptsOnHost: g.runScriptsOnHost,
        allowHttp: flags.allowHttp,
        ...(flags.maxDownloadSize === undefined ? {} : { maxDownloadBytes: flags.maxDownloadSize }),
        ...(flags.packageManager !== undefined ? { packageManager: flags.packageManager } : {}),
        warn: note,
        ...(logFor(g) ? { log: logFor(g) } : {}),
        ...(progressFor(g) ? { progress: progressFor(g) } : {}),
      });
      if (!g.json) recoveredNote(result.recovered);
      printResult(g, result, () =>
        [
          `installed ${result.name} under ${result.root} (${result.steps.length} step${result.steps.length === 1 ? '' : 's'}${result.signedBy ? `, signed by ${result.signedBy}` : ', UNSIGNED: --insecure'})`,
          ...result.steps.map((s) => `  ${s.description}`),
          ...result.skipped.map((s) => `skipped: ${s}`),
          ...result.checks.map(
            (c) =>
              `check ${c.ok ? 'passed' : 'failed'}: ${c.check}${c.skipped ? ` (skipped: ${c.skipped})` : ''}`,
          ),
        ].join('\n'),
      );
    });
