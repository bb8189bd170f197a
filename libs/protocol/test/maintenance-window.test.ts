import { describe, expect, it } from 'vitest';
import { type MaintenanceWindow, parseMaintenanceWindow, windowIsOpen, windowOpening } from '../src/index.ts';

const parse = (spec: string) => parseMaintenanceWindow(spec) as MaintenanceWindow;

describe('maintenance windows', () => {
  it('reads days, hours and a time zone, with UTC when the zone is left out', () => {
    expect(parse('Sat 02:00-04:00 Europe/Paris')).toMatchObject({
      days: [6],
      startMinute: 120,
      endMinute: 240,
      timeZone: 'Europe/Paris',
    });
    expect(parse('Mon-Fri 22:00-02:00').days).toEqual([1, 2, 3, 4, 5]);
    expect(parse('Fri-Mon 01:00-02:00').days).toEqual([0, 1, 5, 6]);
    expect(parse('daily 03:00-05:00 UTC').days).toHaveLength(7);
  });

  it('says what is wrong with a window it cannot read', () => {
    expect(parseMaintenanceWindow('Someday 02:00-04:00')).toMatch(/not a day/);
    expect(parseMaintenanceWindow('Sat 2am-4am')).toMatch(/not a span of hours/);
    expect(parseMaintenanceWindow('Sat 02:00-04:00 Mars/Olympus')).toMatch(/not a time zone/);
    expect(parseMaintenanceWindow('Sat 02:00-02:00')).toMatch(/same minute/);
  });

  it('is open in local time of its zone, summer and winter alike', () => {
    const w = parse('Sat 02:00-04:00 Europe/Paris');
    // Paris is UTC+2 in summer, UTC+1 in winter.
    expect(windowIsOpen(w, new Date('2026-07-04T00:30:00Z'))).toBe(true);
    expect(windowIsOpen(w, new Date('2026-07-04T02:30:00Z'))).toBe(false);
    expect(windowIsOpen(w, new Date('2026-01-03T01:30:00Z'))).toBe(true);
    expect(windowIsOpen(w, new Date('2026-01-03T00:30:00Z'))).toBe(false);
    expect(windowIsOpen(w, new Date('2026-01-04T01:30:00Z'))).toBe(false);
  });

  it('runs past midnight into the next day when it ends before it starts', () => {
    const w = parse('Fri 23:00-01:00 UTC');
    expect(windowIsOpen(w, new Date('2026-01-02T23:30:00Z'))).toBe(true);
    expect(windowIsOpen(w, new Date('2026-01-03T00:30:00Z'))).toBe(true);
    expect(windowIsOpen(w, new Date('2026-01-03T01:30:00Z'))).toBe(false);
    expect(windowIsOpen(w, new Date('2026-01-01T23:30:00Z'))).toBe(false);
  });

  it('finds its next opening, or the current one while open', () => {
    const w = parse('Sat 02:00-04:00 Europe/Paris');
    expect(windowOpening(w, new Date('2026-07-01T12:00:00Z'))).toEqual({
      opensAt: new Date('2026-07-04T00:00:00Z'),
      closesAt: new Date('2026-07-04T02:00:00Z'),
    });
    expect(windowOpening(w, new Date('2026-07-04T01:00:00Z')).opensAt).toEqual(
      new Date('2026-07-04T00:00:00Z'),
    );
    const night = parse('Fri 23:00-01:00 UTC');
    expect(windowOpening(night, new Date('2026-01-03T00:30:00Z'))).toEqual({
      opensAt: new Date('2026-01-02T23:00:00Z'),
      closesAt: new Date('2026-01-03T01:00:00Z'),
    });
  });
});
