import { AdminError } from './errors.ts';

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400, w: 7 * 86_400 } as const;

/** Parses a duration such as `90s`, `30m`, `12h`, `7d`, `2w` (a bare number is seconds) into seconds. */
export function parseDuration(text: string, option: string): number {
  const match = /^(\d+(?:\.\d+)?)([smhdw]?)$/.exec(text.trim());
  if (!match) {
    throw new AdminError(
      'CLP_E_ADMIN_BAD_OPTION',
      `${option} ${text}: not a duration; write a number with s, m, h, d or w (e.g. 7d, 12h, 30m)`,
    );
  }
  const unit = (match[2] || 's') as keyof typeof UNIT_SECONDS;
  return Math.round(Number(match[1]) * UNIT_SECONDS[unit]);
}

/** A whole number within bounds, for numeric options. */
export function parseInteger(text: string, option: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new AdminError(
      'CLP_E_ADMIN_BAD_OPTION',
      `${option} ${text}: expected a whole number from ${min} to ${max}`,
    );
  }
  return n;
}

/** A number within bounds (fractions allowed). */
export function parseNumber(text: string, option: string, min: number, max: number): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new AdminError(
      'CLP_E_ADMIN_BAD_OPTION',
      `${option} ${text}: expected a number from ${min} to ${max}`,
    );
  }
  return n;
}

/** `a,b, c` → [a, b, c]; repeated options are joined first. */
export function parseList(values: readonly string[] | string | undefined): string[] {
  const all = typeof values === 'string' ? [values] : (values ?? []);
  return all
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** One of a fixed set of words, for filters: a typo is a usage error, not an empty list. */
export function oneOf<T extends string>(text: string, option: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(text)) return text as T;
  throw new AdminError('CLP_E_ADMIN_BAD_OPTION', `${option} ${text}: expected one of ${allowed.join(', ')}`, {
    details: { option, value: text, allowed: [...allowed] },
  });
}
