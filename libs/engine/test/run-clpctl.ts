/** Runs the built clpctl bundle as a real child process (for the crash and CLI tests). */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '../../..');
export const CLPCTL = join(repo, 'apps/agent/dist/clpctl.mjs');

/** Builds the bundle when it is not there yet (`npm test` builds it first). */
export function ensureBundle(): void {
  if (existsSync(CLPCTL)) return;
  const built = spawnSync(process.execPath, [join(repo, 'scripts/build.mjs')], {
    cwd: repo,
    encoding: 'utf8',
  });
  if (built.status !== 0) throw new Error(`build failed: ${built.stderr}`);
}

export interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function clpctl(args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [CLPCTL, ...args], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}
