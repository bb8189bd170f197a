import { spawn } from 'node:child_process';
import { PackageError } from './errors.ts';

export interface ToolResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** The last lines of a tool's stderr, enough to say why it failed without flooding the log. */
export function stderrTail(stderr: string, lines = 12): string {
  return stderr.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Runs a package tool with a C locale (its messages are parsed) and no stdin.
 * Resolves with the exit code whatever it is; `runTool` is the strict form.
 */
export function runToolRaw(
  tool: string,
  args: readonly string[],
  options: { cwd?: string } = {},
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, {
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (error: NodeJS.ErrnoException) => {
      const missing = error.code === 'ENOENT';
      reject(
        new PackageError(
          'CLP_E_PACKAGE_MANAGER_FAILED',
          missing
            ? `${tool} is not installed (not found in PATH); install it or choose another package manager`
            : `could not start ${tool}: ${error.message}`,
          { cause: error, details: { tool, args: [...args] } },
        ),
      );
    });
    child.on('close', (code, signal) => {
      resolve({
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        exitCode: code ?? (signal ? 128 : 1),
      });
    });
  });
}

/** Runs a package tool; a non-zero exit is CLP_E_PACKAGE_MANAGER_FAILED with the tool's stderr tail. */
export async function runTool(
  tool: string,
  args: readonly string[],
  what: string,
  options: { cwd?: string } = {},
): Promise<ToolResult> {
  const result = await runToolRaw(tool, args, options);
  if (result.exitCode !== 0) runToolFailed(tool, args, what, result);
  return result;
}

export interface LockPolicy {
  /** Whether a failed run failed only because another process holds the package database. */
  isLocked(result: ToolResult): boolean;
  /** Called before each retry, e.g. to clear a lock left by a killed process. */
  beforeRetry?(): Promise<void>;
  /** How long to keep trying (default two minutes). */
  waitMs?: number;
}

/**
 * runTool, but a run refused because the package database is locked is tried again until the
 * lock is free. After a crash of clpctl the package manager it started may still be finishing;
 * recovery must wait for it rather than fail.
 */
export async function runToolWaitingForLock(
  tool: string,
  args: readonly string[],
  what: string,
  policy: LockPolicy,
): Promise<ToolResult> {
  const deadline = Date.now() + (policy.waitMs ?? 120_000);
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    const result = await runToolRaw(tool, args);
    if (result.exitCode === 0) return result;
    if (!policy.isLocked(result) || Date.now() + delay > deadline)
      return runToolFailed(tool, args, what, result);
    await new Promise((r) => setTimeout(r, delay));
    await policy.beforeRetry?.();
  }
}

function runToolFailed(tool: string, args: readonly string[], what: string, result: ToolResult): never {
  const errTail = stderrTail(result.stderr);
  // pacman names the conflicting files on stdout and only the verdict on stderr: say both.
  const outTail = stderrTail(result.stdout, 8);
  const said = [errTail, outTail].filter((t) => t !== '').join('\n');
  throw new PackageError(
    'CLP_E_PACKAGE_MANAGER_FAILED',
    `${tool} failed to ${what} (exit ${result.exitCode}): ${said || 'no output'}`,
    {
      details: {
        tool,
        args: [...args],
        exitCode: result.exitCode,
        stderrTail: errTail || outTail,
        stdoutTail: outTail,
      },
    },
  );
}

/** Polls `ready` until it says yes; after timeoutMs, fails with `busy` as the reason. */
export async function waitUntil(
  ready: () => Promise<boolean>,
  timeoutMs: number,
  busy: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 50; !(await ready()); delay = Math.min(delay * 2, 1_000)) {
    if (Date.now() > deadline) {
      throw new PackageError(
        'CLP_E_PACKAGE_MANAGER_FAILED',
        `${busy} after ${Math.round(timeoutMs / 1000)} s; wait for it to finish, then run 'clpctl recover'`,
        {
          details: { busy },
        },
      );
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}
