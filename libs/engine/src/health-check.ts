import type { CheckAction } from '@clp/format';
import { runProcess, scriptEnvironment } from './process.ts';
import { whySkipService } from './service-step.ts';

export interface CheckResult {
  check: string;
  ok: boolean;
  skipped?: string;
  detail: string;
}

/**
 * Runs one check until it passes or its window closes (retrying every second). A unit check runs
 * `systemctl is-active` and is skipped where systemctl cannot act (another root, no systemd).
 */
export async function runCheck(
  check: CheckAction,
  ctx: { root: string; patchDir: string; log: (line: string) => void },
): Promise<CheckResult> {
  const label =
    check.command !== undefined ? `check "${check.command}"` : `check unit ${check.unit} is active`;
  let program: string;
  let args: string[];
  if (check.command !== undefined) {
    program = '/bin/sh';
    // The same clean environment as a script's: a check runs as root on this host too.
    args = ['-c', check.command];
  } else {
    const skip = await whySkipService(ctx.root);
    if (skip !== null) {
      ctx.log(`skipped: ${label} (${skip})`);
      return { check: label, ok: true, skipped: skip, detail: skip };
    }
    program = 'systemctl';
    args = ['is-active', '--quiet', check.unit as string];
  }
  const deadline = Date.now() + check.withinMs;
  let last = '';
  for (;;) {
    const left = Math.max(1, deadline - Date.now());
    const result = await runProcess(program, args, {
      cwd: ctx.patchDir,
      env: scriptEnvironment({ root: ctx.root, patchDir: ctx.patchDir }),
      timeoutMs: left,
      log: ctx.log,
      prefix: `[${label}] `,
    }).catch((error: Error) => ({ exitCode: -1, signal: null, timedOut: false, tail: error.message }));
    if (result.exitCode === 0) return { check: label, ok: true, detail: 'passed' };
    last = result.timedOut
      ? 'did not finish in time'
      : `exited with status ${result.exitCode}${result.tail ? `: ${result.tail}` : ''}`;
    if (Date.now() + 1000 >= deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  ctx.log(`${label} failed within ${Math.round(check.withinMs / 1000)} s: ${last}`);
  return { check: label, ok: false, detail: last };
}
