import { FormatError } from './errors.ts';

export interface PatchName {
  name: string;
  revision: number;
  /** ISO date, e.g. 2025-11-23. */
  date: string;
  /** The YYMMDD digits. */
  dateCode: string;
}

const NAME = /^CLP(\d*)(\d{2})(\d{2})(\d{2})$/;

/** Parses `CLP` + revision + `YYMMDD`; the revision defaults to 1. */
export function parsePatchName(name: string): PatchName {
  const m = NAME.exec(name);
  if (!m) {
    throw new FormatError(
      'CLP_E_BAD_NAME',
      `patch name "${name}" is not CLP + revision + YYMMDD (for example CLP1251123: revision 1 of 2025-11-23)`,
      { details: { name } },
    );
  }
  const [, rev, yy, mm, dd] = m as unknown as [string, string, string, string, string];
  const year = 2000 + Number(yy);
  const month = Number(mm);
  const day = Number(dd);
  const probe = new Date(Date.UTC(year, month - 1, day));
  if (probe.getUTCFullYear() !== year || probe.getUTCMonth() !== month - 1 || probe.getUTCDate() !== day) {
    throw new FormatError(
      'CLP_E_BAD_NAME',
      `patch name "${name}" has no valid date in its last six digits (YYMMDD)`,
      {
        details: { name },
      },
    );
  }
  const revision = rev === '' ? 1 : Number(rev);
  if (!Number.isSafeInteger(revision) || revision < 1) {
    throw new FormatError(
      'CLP_E_BAD_NAME',
      `patch name "${name}" has revision ${rev}; revisions start at 1`,
      {
        details: { name },
      },
    );
  }
  return { name, revision, date: `${year}-${mm}-${dd}`, dateCode: `${yy}${mm}${dd}` };
}

/** Orders two patches of one series: by date, then revision. Negative when a is older. */
export function comparePatchNames(a: string, b: string): number {
  const pa = parsePatchName(a);
  const pb = parsePatchName(b);
  if (pa.date !== pb.date) return pa.date < pb.date ? -1 : 1;
  return pa.revision - pb.revision;
}
