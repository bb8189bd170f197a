import { readableTime } from '@clp/protocol';

/**
 * The agent's cut-off setting (`clpctl config set cutoff`): `none`, a delay in days (`7d` or `7`), or a date
 * (apply only releases made before it). The agent applies it; the server only explains it.
 */
export type Cutoff = { delayDays: number } | { before: Date } | null;

/** Parses a cut-off as the agent's `clpctl config set cutoff` takes it; undefined when malformed. */
export function parseCutoff(value: string): Cutoff | undefined {
  const text = value.trim();
  if (text === '' || text === 'none') return null;
  const days = /^(\d{1,4})d?$/.exec(text);
  if (days) return { delayDays: Number(days[1]) };
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const before = new Date(text);
    if (!Number.isNaN(before.getTime())) return { before };
  }
  return undefined;
}

export interface CutoffVerdict {
  setting: string;
  /** True when the machine's cut-off keeps it from applying the release now. */
  held: boolean;
  /** When the cut-off lets the release through (null: never, or no cut-off). */
  appliesFrom: string | null;
  reason: string;
}

/** Whether a cut-off holds back a release uploaded at `releasedAt`, as of `now`. */
export function judgeCutoff(cutoff: Cutoff, releasedAt: Date, now: Date): CutoffVerdict {
  if (cutoff === null) {
    return { setting: 'none', held: false, appliesFrom: null, reason: 'machine has no cut-off' };
  }
  if ('delayDays' in cutoff) {
    const from = new Date(releasedAt.getTime() + cutoff.delayDays * 86_400_000);
    const held = now.getTime() < from.getTime();
    return {
      setting: `${cutoff.delayDays}d`,
      held,
      appliesFrom: from.toISOString(),
      reason: held
        ? `machine applies releases ${cutoff.delayDays} days after upload: this one from ${readableTime(from)}`
        : `release is older than the machine's ${cutoff.delayDays}-day delay`,
    };
  }
  const held = releasedAt.getTime() >= cutoff.before.getTime();
  return {
    setting: cutoff.before.toISOString(),
    held,
    appliesFrom: null,
    reason: held
      ? `release was uploaded ${readableTime(releasedAt)}, not before the machine's cut-off date ${readableTime(cutoff.before)}`
      : `release was uploaded before the machine's cut-off date ${readableTime(cutoff.before)}`,
  };
}
