import { z } from 'zod';

/**
 * Maintenance windows, e.g. `Sat 02:00-04:00 Europe/Paris`, `Mon-Fri 22:00-02:00 UTC`,
 * `daily 03:00-05:00`: days (names, ranges, or `daily`), a start and an end in local time (an end
 * before the start runs past midnight into the next day), and an IANA time zone (UTC when left
 * out). Time zones go through Intl, so no time-zone database ships with us. The server checks
 * the text, the poll carries it parsed, and the agent decides with this same code whether it may
 * apply now.
 */
export const MaintenanceWindow = z.object({
  /** The operator's text, as set. */
  spec: z.string(),
  /** Days the window opens on: 0 = Sunday … 6 = Saturday. */
  days: z.array(z.number().int().min(0).max(6)).min(1).max(7),
  /** Minutes after local midnight. */
  startMinute: z.number().int().min(0).max(1439),
  endMinute: z.number().int().min(0).max(1439),
  timeZone: z.string(),
});
export type MaintenanceWindow = z.infer<typeof MaintenanceWindow>;

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

function dayIndex(word: string): number | undefined {
  const i = DAY_NAMES.indexOf(word.slice(0, 3).toLowerCase() as (typeof DAY_NAMES)[number]);
  return i < 0 ? undefined : i;
}

function minuteOf(hhmm: string): number | undefined {
  const m = /^([01]?\d|2[0-3]):([0-5]\d)$/.exec(hhmm);
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined;
}

/** The window of a text, or a sentence saying what is wrong with it. */
export function parseMaintenanceWindow(spec: string): MaintenanceWindow | string {
  const parts = spec.trim().split(/\s+/);
  if (parts.length < 2 || parts.length > 3)
    return `"${spec}": write days, hours and a time zone, e.g. "Sat 02:00-04:00 Europe/Paris"`;
  const [dayText, hours, zone = 'UTC'] = parts as [string, string, string?];
  const days = new Set<number>();
  if (/^(daily|\*)$/i.test(dayText)) for (let d = 0; d < 7; d++) days.add(d);
  else {
    for (const piece of dayText.split(',')) {
      const [from, to] = piece.split('-') as [string, string?];
      const a = dayIndex(from);
      const b = to === undefined ? a : dayIndex(to);
      if (
        a === undefined ||
        b === undefined ||
        !/^[a-z]{3,9}$/i.test(from) ||
        (to && !/^[a-z]{3,9}$/i.test(to))
      )
        return `"${piece}" is not a day: use Mon … Sun, a range (Mon-Fri), a list (Sat,Sun) or daily`;
      for (let d = a; ; d = (d + 1) % 7) {
        days.add(d);
        if (d === b) break;
      }
    }
  }
  const [startText, endText] = hours.split('-') as [string, string?];
  const startMinute = minuteOf(startText);
  const endMinute = endText === undefined ? undefined : minuteOf(endText);
  if (startMinute === undefined || endMinute === undefined)
    return `"${hours}" is not a span of hours: write HH:MM-HH:MM, e.g. 02:00-04:00`;
  if (startMinute === endMinute) return `"${hours}": the window opens and closes at the same minute`;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    return `"${zone}" is not a time zone: use an IANA name such as Europe/Paris or UTC`;
  }
  return { spec: spec.trim(), days: [...days].sort(), startMinute, endMinute, timeZone: zone };
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      weekday: 'short',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

interface LocalTime {
  year: number;
  month: number;
  day: number;
  weekday: number;
  minute: number;
}

function localTime(at: Date, timeZone: string): LocalTime {
  const parts = Object.fromEntries(
    formatter(timeZone)
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    weekday: dayIndex(String(parts.weekday)) ?? 0,
    minute: Number(parts.hour) * 60 + Number(parts.minute),
  };
}

/** The instant of a local date and minute in a zone (the later one of a repeated hour). */
function zonedInstant(year: number, month: number, day: number, minute: number, timeZone: string): number {
  const wall = Date.UTC(year, month - 1, day, 0, minute);
  let guess = wall;
  for (let i = 0; i < 3; i++) {
    const seen = localTime(new Date(guess), timeZone);
    const seenWall = Date.UTC(seen.year, seen.month - 1, seen.day, 0, seen.minute);
    if (seenWall === wall) return guess;
    guess += wall - seenWall;
  }
  return guess;
}

/** True when the window is open at `at`. */
export function windowIsOpen(window: MaintenanceWindow, at: Date): boolean {
  const t = localTime(at, window.timeZone);
  const { startMinute: start, endMinute: end, days } = window;
  if (start < end) return days.includes(t.weekday) && t.minute >= start && t.minute < end;
  // Past midnight: open from the start on a listed day, and until the end on the day after.
  return (
    (days.includes(t.weekday) && t.minute >= start) || (days.includes((t.weekday + 6) % 7) && t.minute < end)
  );
}

/** The window's current opening (when open at `at`) or its next one: when it opens and closes. */
export function windowOpening(window: MaintenanceWindow, at: Date): { opensAt: Date; closesAt: Date } {
  const t = localTime(at, window.timeZone);
  const length = (window.endMinute - window.startMinute + 1440) % 1440;
  // From yesterday (an opening past midnight may still run) to a week ahead.
  for (let k = -1; k <= 8; k++) {
    const date = new Date(Date.UTC(t.year, t.month - 1, t.day) + k * DAY_MS);
    if (!window.days.includes(date.getUTCDay())) continue;
    const y = date.getUTCFullYear();
    const m = date.getUTCMonth() + 1;
    const d = date.getUTCDate();
    const opens = zonedInstant(y, m, d, window.startMinute, window.timeZone);
    const closes =
      window.startMinute < window.endMinute
        ? zonedInstant(y, m, d, window.endMinute, window.timeZone)
        : zonedInstant(y, m, d, window.startMinute + length, window.timeZone);
    if (closes > at.getTime()) return { opensAt: new Date(opens), closesAt: new Date(closes) };
  }
  // Unreachable for a window with at least one day; a week ahead keeps callers safe.
  return {
    opensAt: new Date(at.getTime() + 7 * DAY_MS),
    closesAt: new Date(at.getTime() + 7 * DAY_MS + MINUTE_MS),
  };
}
