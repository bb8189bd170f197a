import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';

export interface ProcessResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The last lines of output, for error messages. */
  tail: string;
}

/** The PATH scripts and checks run with, whatever the caller's was. */
export const SCRIPT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The whole environment of a script or check: PATH, LANG and clp's own variables. Nothing of the
 * caller's (tokens, credentials, proxies, its PATH) reaches a script that runs as root.
 */
export function scriptEnvironment(vars: { root: string; patchDir: string; tx?: string }): NodeJS.ProcessEnv {
  return {
    PATH: SCRIPT_PATH,
    LANG: process.env.LANG ?? 'C.UTF-8',
    CLP_ROOT: vars.root,
    CLP_PATCH_DIR: vars.patchDir,
    ...(vars.tx === undefined ? {} : { CLP_TX: vars.tx }),
  };
}

/** How long output may go on arriving after the program itself has exited. */
const DRAIN_MS = 200;

/**
 * Runs a program as the leader of its own process group, sends each output line to log, and
 * kills the whole group after timeoutMs. It is done when the program exits: a child that keeps
 * its stdout open (a daemon it started) does not hold it up.
 */
export function runProcess(
  command: string,
  args: string[],
  options: {
    cwd: string;
    env: NodeJS.ProcessEnv;
    timeoutMs: number;
    log: (line: string) => void;
    prefix: string;
    /** Told the group's id (the program's pid) as soon as it runs. */
    onStart?: (pgid: number) => Promise<void>;
  },
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const tail: string[] = [];
    let timedOut = false;
    const onData = (buf: Buffer) => {
      for (const line of buf.toString('utf8').split('\n')) {
        if (line === '') continue;
        options.log(`${options.prefix}${line}`);
        tail.push(line);
        if (tail.length > 10) tail.shift();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    let started: Promise<void> = Promise.resolve();
    child.on('spawn', () => {
      if (child.pid !== undefined && options.onStart) started = options.onStart(child.pid);
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('exit', (exitCode, signal) => {
      clearTimeout(timer);
      const drained = Promise.all(
        [child.stdout, child.stderr].map(
          (s) => new Promise<void>((r) => (s.closed ? r() : s.once('close', () => r()))),
        ),
      );
      const late = new Promise<void>((r) => setTimeout(r, DRAIN_MS));
      void Promise.race([drained, late]).then(async () => {
        child.stdout.destroy();
        child.stderr.destroy();
        try {
          await started;
        } catch (error) {
          reject(error);
          return;
        }
        resolve({ exitCode, signal, timedOut, tail: tail.join('\n') });
      });
    });
  });
}

/** Finds a program on PATH (or checks an absolute path); null when it is not there. */
export async function whichProgram(name: string, path = process.env.PATH): Promise<string | null> {
  const candidates = name.includes('/')
    ? [name]
    : (path ?? '/usr/bin:/bin').split(':').map((d) => `${d}/${name}`);
  for (const c of candidates) {
    try {
      await access(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return null;
}
