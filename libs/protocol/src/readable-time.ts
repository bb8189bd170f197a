/**
 * A time as people read it in a sentence or a table (reasons, "why" answers, the console):
 * `2026-12-04 13:29:45 UTC`, unambiguous across time zones. Fields that carry times stay ISO.
 */
export function readableTime(at: Date): string {
  return `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}
