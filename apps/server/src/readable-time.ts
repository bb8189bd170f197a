/**
 * A time inside a sentence meant for people (reasons, "why" answers): `2026-12-04 13:29:45 UTC`,
 * as the console writes times, not the raw ISO form. Fields that carry times stay ISO.
 */
export function readableTime(at: Date): string {
  return `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}
