import { readableTime } from '@clp/protocol';
import { serverNow } from './api-client.ts';

const UNITS: Array<[Intl.RelativeTimeFormatUnit, number]> = [
  ['year', 365 * 86_400],
  ['month', 30 * 86_400],
  ['week', 7 * 86_400],
  ['day', 86_400],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

/** "3 minutes ago", "in 2 hours", by the server's clock. */
export function relativeTime(iso: string, now = serverNow()): string {
  const seconds = (Date.parse(iso) - now) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 10) return 'just now';
  for (const [unit, size] of UNITS) {
    if (abs >= size || unit === 'second') return relative.format(Math.round(seconds / size), unit);
  }
  return iso;
}

/** 2026-04-01 12:03:04 UTC: unambiguous for people in several time zones. */
export function absoluteTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : readableTime(d);
}
