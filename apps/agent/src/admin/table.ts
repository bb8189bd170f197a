/** A compact text table: a header row, then one row per item, columns padded to their widest cell. */
export function table(
  headers: readonly string[],
  rows: readonly (readonly (string | number | null | undefined)[])[],
): string {
  if (rows.length === 0) return '(none)';
  const cells = [
    headers,
    ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c)))),
  ];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `key  value` lines for one item, keys aligned. */
export function fields(
  pairs: readonly (readonly [string, string | number | boolean | null | undefined])[],
): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs
    .map(([k, v]) => `${k.padEnd(width)}  ${v === null || v === undefined || v === '' ? '-' : String(v)}`)
    .join('\n');
}

/** The first 12 hex digits of a sha256: enough to tell releases apart in a table. */
export function short(id: string | null | undefined): string {
  return id ? id.slice(0, 12) : '-';
}

const pad = (n: number) => String(n).padStart(2, '0');

function local(iso: string): Date | undefined {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** An ISO time as `YYYY-MM-DD HH:MM` in this machine's time zone, compact for tables. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '-';
  const d = local(iso);
  if (!d) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** As `when`, to the second: for events that follow each other quickly (reports, the audit log). */
export function whenExact(iso: string | null | undefined): string {
  if (!iso) return '-';
  const d = local(iso);
  if (!d) return iso;
  return `${when(iso)}:${pad(d.getSeconds())}`;
}
