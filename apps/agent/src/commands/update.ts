import { localEngineWith } from '../fleet/engine-adapter.ts';
import { downloadBar } from '../fleet/progress-bar.ts';
import type { UpdateResult } from '../fleet/update.ts';
import { note, printResult } from '../output.ts';
import type { RegisterCommand } from './index.ts';

function describe(result: UpdateResult): string {
  const lines: string[] = [];
  if (result.mode === 'off') return "mode is 'off': nothing checked (clpctl config set mode normal)";
  if (result.error) lines.push(`no server answered: ${result.error.code}: ${result.error.message}`);
  else
    lines.push(
      `checked with ${result.server}${result.mode === 'check-only' ? ' (check-only: nothing applied)' : ''}`,
    );
  for (const a of result.actions) {
    lines.push(
      `  ${a.outcome.padEnd(15)} ${a.name}${a.code ? `  ${a.code}` : ''}${a.message ? `: ${a.message}` : ''}`,
    );
  }
  if (!result.error && result.actions.length === 0) lines.push('  nothing to do');
  const r = result.reports;
  if (r.accepted + r.duplicates > 0) lines.push(`reports sent: ${r.accepted + r.duplicates}`);
  if (r.left > 0) lines.push(`reports spooled for the next run: ${r.left}`);
  return lines.join('\n');
}

export const update: RegisterCommand = (program, globals) =>
  program
    .command('update')
    .description(
      'one check with the server: poll, download, verify, apply, take back what was reverted, report',
    )
    .option('--retry-failed', 'let the server offer again the releases that failed on this machine', false)
    .option(
      '--outside-window',
      "apply now even outside the machine's maintenance window (without it, releases wait for the window)",
      false,
    )
    .addHelpText(
      'after',
      '\nExit status: 0 nothing to do or everything applied, 6 an apply or revert failed (rolled back),\n7 a rollback could not finish, 8 no server answered or a download failed (retried next time),\n11 another clpctl or the package manager was busy (nothing changed; retried next time).',
    )
    .action(async (options: { retryFailed: boolean; outsideWindow: boolean }) => {
      const g = globals();
      // Loaded on use: the HTTP client is most of the program and other commands do not need it.
      const { runUpdate } = await import('../fleet/update.ts');
      const bar = downloadBar(process.stderr, !g.json);
      // SIGTERM (systemctl stop, shutdown): finish the patch being applied, skip the rest, report.
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      const result = await runUpdate({
        signal: stop.signal,
        root: g.root,
        engine: localEngineWith({ runScriptsOnHost: g.runScriptsOnHost }),
        retryFailed: options.retryFailed,
        ignoreWindow: options.outsideWindow,
        log: g.verbose ? note : () => {},
        onProgress: (name, progress) => {
          bar.update(name, progress);
          if (progress.received >= progress.total) bar.done();
        },
      });
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      bar.done();
      printResult(g, result, () => describe(result));
      process.exitCode = result.exitCode;
    });
