import { isClpError } from '@clp/format';
import { EXIT, exitCodeFor } from './exit-codes.ts';

export interface GlobalOptions {
  /** The system root every path is taken under (like pacman --root). */
  root: string;
  /** With --root, let patches' scripts run on this host. */
  runScriptsOnHost: boolean;
  json: boolean;
  verbose: boolean;
}

/** Prints a result: JSON when --json, otherwise the human text. */
export function printResult(options: Pick<GlobalOptions, 'json'>, value: unknown, human: () => string): void {
  if (options.json) {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  } else {
    const text = human();
    if (text !== '') process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }
}

/** Loud notes for people (warnings, progress) go to stderr so that stdout stays scriptable. */
export function note(message: string): void {
  process.stderr.write(`${message}\n`);
}

/**
 * The one error boundary of clpctl: known errors print `error CODE: message` (or JSON) and exit
 * with their mapped code; anything else is a bug and prints its stack.
 */
export function reportError(error: unknown, json: boolean): number {
  if (isClpError(error)) {
    if (json) {
      const details = (error as { details?: Record<string, unknown> }).details ?? {};
      process.stderr.write(
        `${JSON.stringify({ error: { code: error.code, message: error.message, ...details } })}\n`,
      );
    } else {
      process.stderr.write(`error ${error.code}: ${error.message}\n`);
    }
    return exitCodeFor(error.code);
  }
  const message = error instanceof Error ? error.message : String(error);
  if (json) {
    process.stderr.write(`${JSON.stringify({ error: { code: 'CLP_E_INTERNAL', message } })}\n`);
  } else {
    process.stderr.write(`error CLP_E_INTERNAL: ${message}\n`);
    if (error instanceof Error && error.stack)
      process.stderr.write(`${error.stack}\n(this is a bug in clpctl; please report it)\n`);
  }
  return EXIT.internal;
}
