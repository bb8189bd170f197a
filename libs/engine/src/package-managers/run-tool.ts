import { spawn } from 'node:child_process';
import { PackageError } from './errors.ts';

export interface ToolResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The last lines of a tool's stderr, enough to say why it failed without flooding the log. */
export function stderrTail(stderr: string, lines = 12): string {
  return stderr.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Runs a package tool with a C locale (its messages are parsed), no stdin, and an environment
 * holding nothing of the caller's but PATH.
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
      // Nothing of the caller's environment but PATH: maintainer scripts and hooks run under it.
      env: { PATH: process.env.PATH ?? DEFAULT_PATH, LC_ALL: 'C', LANG: 'C' },
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

export function runToolFailed(
  tool: string,
  args: readonly string[],
  what: string,
  result: ToolResult,
): never {
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
