import { ClpError } from '@clp/format';

export const ENGINE_ERROR_CODES = [
  /**
   * Another clpctl holds the kernel lock on ROOT/var/lib/clp/lock (or a package manager holds its
   * own lock): nothing was changed, try again later.
   */
  'CLP_E_BUSY',
  /** --root names nothing, or something that is not a folder. */
  'CLP_E_BAD_ROOT',
  /**
   * A symbolic link where the engine follows none: in its own state, log or trust store, or a
   * folder on the way to a patched file that became a link since the patch was installed.
   */
  'CLP_E_LINK_REFUSED',
  /** Several refusals at once; each is listed in the message and in details.refusals. */
  'CLP_E_NOT_APPLICABLE',
  'CLP_E_ARCHITECTURE',
  'CLP_E_OS',
  'CLP_E_PRECONDITION',
  'CLP_E_DOWNGRADE',
  'CLP_E_ALREADY_INSTALLED',
  'CLP_E_PREVIOUSLY_FAILED',
  'CLP_E_INTERPRETER_MISSING',
  /** A program the engine itself needs on this machine (flock of util-linux, for its lock) is not installed. */
  'CLP_E_TOOL_MISSING',
  /**
   * The patch runs scripts, and under --root they would run on this host, not in the root:
   * refused unless allowed (--run-scripts-on-host).
   */
  'CLP_E_SCRIPT_ON_HOST',
  'CLP_E_NO_SPACE',
  'CLP_E_PATH_ESCAPE',
  /** A patched path holds a folder, FIFO, socket, device or link: only regular files are changed. */
  'CLP_E_TARGET_NOT_FILE',
  'CLP_E_UNKNOWN_OWNER',
  'CLP_E_READ_ONLY',
  'CLP_E_PERMISSION',
  'CLP_E_APPLY_FAILED',
  'CLP_E_SCRIPT_FAILED',
  'CLP_E_SCRIPT_TIMEOUT',
  'CLP_E_SERVICE_FAILED',
  'CLP_E_CHECK_FAILED',
  'CLP_E_NOT_INSTALLED',
  'CLP_E_DRIFT',
  /** A change the install allowed as irreversible cannot be taken back by uninstall. */
  'CLP_E_IRREVERSIBLE',
  'CLP_E_ROLLBACK_FAILED',
  'CLP_E_RECOVERY_FAILED',
  'CLP_E_JOURNAL_CORRUPT',
  'CLP_E_BAD_STATE',
] as const;

export type EngineErrorCode = (typeof ENGINE_ERROR_CODES)[number];

export class EngineError extends ClpError<EngineErrorCode> {
  constructor(
    code: EngineErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(code, message, options);
    this.name = 'EngineError';
  }
}

/** One reason a patch does not apply here, named after the rule that refuses it. */
export interface Refusal {
  code: EngineErrorCode | string;
  /** The rule, in a word or two: architecture, os, precondition, downgrade, … */
  rule: string;
  message: string;
}

/** Turns the refusals prepare collected into one error listing all of them. */
export function refusalError(refusals: Refusal[], patch: string): EngineError {
  const only = refusals.length === 1 ? refusals[0] : undefined;
  const code = only && isEngineCode(only.code) ? only.code : 'CLP_E_NOT_APPLICABLE';
  const lines = refusals.map((r) => `  - [${r.rule}] ${r.code}: ${r.message}`).join('\n');
  return new EngineError(
    code,
    `patch ${patch} does not apply here (${refusals.length} problem${refusals.length === 1 ? '' : 's'}; nothing was changed):\n${lines}`,
    { details: { refusals } },
  );
}

function isEngineCode(code: string): code is EngineErrorCode {
  return (ENGINE_ERROR_CODES as readonly string[]).includes(code);
}

/** Maps a system error from a write to the engine code that names its cause. */
export function codeForSystemError(error: unknown): EngineErrorCode {
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (errno) {
    case 'ENOSPC':
    case 'EDQUOT':
      return 'CLP_E_NO_SPACE';
    case 'EROFS':
      return 'CLP_E_READ_ONLY';
    case 'EACCES':
    case 'EPERM':
      return 'CLP_E_PERMISSION';
    default:
      return 'CLP_E_APPLY_FAILED';
  }
}

/** A patch that is not installed under the root, and the `list` that shows what is: of that root. */
export function notInstalledError(name: string, root: string): EngineError {
  const list = root === '/' ? 'clpctl list' : `clpctl list --root ${root}`;
  return new EngineError(
    'CLP_E_NOT_INSTALLED',
    `${name} is not installed under ${root}; '${list}' shows what is`,
    {
      details: { name },
    },
  );
}
