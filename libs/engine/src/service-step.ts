import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { EngineError } from './errors.ts';
import { runProcess } from './process.ts';
import type { PreparedStep, StepContext, StepRecord } from './step.ts';

export interface ServiceUndo {
  [key: string]: unknown;
  unit: string;
  action: 'reload' | 'restart';
  /** Why systemctl is not run (another root, or no systemd), or null when it is. */
  skipped: string | null;
}

/** systemctl acts only on the running system: the root must be `/` and systemd must be running. */
export async function whySkipService(root: string): Promise<string | null> {
  if (resolve(root) !== '/') return `the root is ${root}, not the running system`;
  try {
    await stat('/run/systemd/system');
    return null;
  } catch {
    return 'systemd is not running here (/run/systemd/system is missing)';
  }
}

async function systemctl(u: ServiceUndo, ctx: StepContext): Promise<void> {
  if (u.skipped !== null) {
    ctx.log(`skipped: systemctl ${u.action} ${u.unit} (${u.skipped})`);
    return;
  }
  const result = await runProcess('systemctl', [u.action, u.unit], {
    cwd: '/',
    env: process.env,
    timeoutMs: 120_000,
    log: ctx.log,
    prefix: '[systemctl] ',
  });
  if (result.exitCode !== 0) {
    throw new EngineError(
      'CLP_E_SERVICE_FAILED',
      `systemctl ${u.action} ${u.unit} failed (status ${result.exitCode}): ${result.tail}`,
      {
        details: { unit: u.unit },
      },
    );
  }
}

export function prepareServiceStep(record: StepRecord, ctx: StepContext): PreparedStep {
  return { record, run: () => systemctl(record.undo as ServiceUndo, ctx) };
}

/** Reloads or restarts the unit again, so that it picks up the restored files (run after them). */
export async function undoServiceStep(record: StepRecord, ctx: StepContext): Promise<void> {
  await systemctl(record.undo as ServiceUndo, ctx);
}
