import { open } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { EngineError } from './errors.ts';
import { runProcess, SCRIPT_PATH, scriptEnvironment, whichProgram } from './process.ts';
import { startTimeOf } from './script-processes.ts';
import type { PreparedStep, StepContext, StepRecord, StepRun } from './step.ts';

export const DEFAULT_SCRIPT_TIMEOUT_MS = 300_000;

export interface Interpreter {
  /** The program, as the shebang names it (`/bin/sh`, `bash`, `pwsh`). */
  program: string;
  args: string[];
  /** Human name for messages. */
  label: string;
}

/** The interpreter of a script file: its shebang (`#!/usr/bin/env X` means X), pwsh for .ps1, else sh. */
export async function interpreterOf(scriptFile: string): Promise<Interpreter> {
  const fh = await open(scriptFile, 'r');
  try {
    const buf = Buffer.alloc(256);
    const { bytesRead } = await fh.read(buf, 0, 256, 0);
    return interpreterFromHead(buf.subarray(0, bytesRead), scriptFile);
  } finally {
    await fh.close();
  }
}

/** The interpreter named by the first bytes of a script called `name`. */
export function interpreterFromHead(head: Buffer, name: string): Interpreter {
  const first =
    head
      .subarray(0, 256)
      .toString('utf8')
      .replace(/^\uFEFF/, '')
      .split(/\r?\n/)[0] ?? '';
  if (first.startsWith('#!')) {
    const words = first.slice(2).trim().split(/\s+/).filter(Boolean);
    let [program, ...args] = words;
    if (program?.endsWith('/env') && args.length > 0) {
      const rest = args.filter((a) => !a.startsWith('-'));
      program = rest[0];
      args = rest.slice(1);
    }
    if (program !== undefined) return { program, args, label: labelOf(program) };
  }
  if (name.toLowerCase().endsWith('.ps1'))
    return { program: 'pwsh', args: ['-NoProfile', '-File'], label: 'PowerShell (pwsh)' };
  return { program: '/bin/sh', args: [], label: 'sh' };
}

function labelOf(program: string): string {
  const base = program.split('/').pop() ?? program;
  return base === 'pwsh' ? 'PowerShell (pwsh)' : base;
}

/** Null when the interpreter can run here, else the refusal message. */
export async function missingInterpreter(script: string, interp: Interpreter): Promise<string | null> {
  if ((await whichProgram(interp.program, SCRIPT_PATH)) !== null) return null;
  return `${script} needs ${interp.label}, which is not installed here (looked for "${interp.program}"); install it and try again`;
}

export interface ScriptUndo {
  [key: string]: unknown;
  /** The script, as an entry of the patch. */
  script: string;
  interpreter: Interpreter;
  timeoutMs: number;
  /** A script run to take this one back (a historic patch's Remove-Script.ps1), or null. */
  undoScript: string | null;
  undoInterpreter: Interpreter | null;
  /** The extracted patch the script is taken from and runs in (absolute; moves with the patch folder). */
  patchDir: string;
}

/**
 * Runs a script of the extracted patch in `patchDir` as the leader of its own process group (the
 * group is journaled through `run`), with nothing in its environment but PATH, LANG, CLP_ROOT,
 * CLP_PATCH_DIR and CLP_TX (the transaction, which its children inherit).
 */
export async function runScript(
  script: string,
  interp: Interpreter,
  patchDir: string,
  timeoutMs: number,
  ctx: Pick<StepContext, 'root' | 'log' | 'txDir'> & { step: number; run?: StepRun },
): Promise<void> {
  ctx.log(`running ${script} with ${interp.label}`);
  const program = (await whichProgram(interp.program, SCRIPT_PATH)) ?? interp.program;
  const result = await runProcess(program, [...interp.args, join(patchDir, script)], {
    cwd: patchDir,
    // The transaction's folder is named after it.
    env: scriptEnvironment({ root: ctx.root, patchDir, tx: basename(ctx.txDir) }),
    timeoutMs,
    log: ctx.log,
    prefix: `[${script}] `,
    onStart: async (pgid) => {
      await ctx.run?.trackGroup({ step: ctx.step, pgid, start: await startTimeOf(pgid) });
    },
  }).catch((error: NodeJS.ErrnoException) => {
    // Only a failure to start the program means its interpreter is missing; a journal write failing is itself.
    if (!error.syscall?.startsWith('spawn')) throw error;
    throw new EngineError(
      'CLP_E_INTERPRETER_MISSING',
      `${script} needs ${interp.label}, which could not be started: ${error.message}`,
      {
        cause: error,
      },
    );
  });
  if (result.timedOut) {
    throw new EngineError(
      'CLP_E_SCRIPT_TIMEOUT',
      `${script} did not finish within ${Math.round(timeoutMs / 1000)} s and was killed`,
      {
        details: { script, timeoutMs },
      },
    );
  }
  if (result.exitCode !== 0) {
    const how =
      result.exitCode === null ? `was killed by ${result.signal}` : `exited with status ${result.exitCode}`;
    throw new EngineError(
      'CLP_E_SCRIPT_FAILED',
      `${script} ${how}${result.tail ? `; last output:\n${result.tail}` : ''}`,
      {
        details: { script, exitCode: result.exitCode },
      },
    );
  }
}

/** The patch as extracted inside a transaction folder. */
export function patchDirIn(txDir: string): string {
  return join(txDir, 'patch');
}

export function prepareScriptStep(record: StepRecord, ctx: StepContext): PreparedStep {
  const u = record.undo as ScriptUndo;
  return {
    record,
    run: (run) =>
      runScript(u.script, u.interpreter, u.patchDir, u.timeoutMs, {
        ...ctx,
        step: record.index,
        ...(run === undefined ? {} : { run }),
      }),
  };
}

/** A script cannot be taken back by the engine; its patch's remove script runs when there is one. */
export async function undoScriptStep(record: StepRecord, ctx: StepContext, run?: StepRun): Promise<void> {
  const u = record.undo as ScriptUndo;
  if (u.undoScript === null || u.undoInterpreter === null) {
    ctx.log(`${u.script} ran and cannot be undone by the engine (the patch has no remove script)`);
    return;
  }
  await runScript(u.undoScript, u.undoInterpreter, u.patchDir, u.timeoutMs, {
    ...ctx,
    step: record.index,
    ...(run === undefined ? {} : { run }),
  });
}
