import type { Progress } from '@clp/engine';
import { type GlobalOptions, note } from '../output.ts';

/** Progress lines for people: on a terminal only, on stderr, never with --json. */
export function progressFor(g: GlobalOptions): ((p: Progress) => void) | undefined {
  if (g.json || !process.stderr.isTTY) return undefined;
  return (p) => note(`[${p.step}/${p.total}] ${p.description}`);
}

/** Every log line on stderr with --verbose (the log file always gets them). */
export function logFor(g: GlobalOptions): ((line: string) => void) | undefined {
  return g.verbose && !g.json ? (line) => note(line) : undefined;
}

/** What recovery did first, when it did something: worth saying before the command's own output. */
export function recoveredNote(recovered: { action: string; op?: string; patch?: string } | undefined): void {
  if (recovered === undefined || recovered.action === 'nothing') return;
  note(
    recovered.action === 'rolled-back'
      ? `recovered: the interrupted ${recovered.op} of ${recovered.patch} was rolled back`
      : `recovered: the interrupted ${recovered.op} of ${recovered.patch} was finished`,
  );
}
