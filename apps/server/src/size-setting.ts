const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/**
 * A size as people write it: `1073741824`, `1GiB`, `512MiB`, `1.5G`, `100MB` (KiB/MiB/GiB and
 * bare K/M/G are powers of 1024, KB/MB/GB of 1000, as in the README's "1 GiB").
 */
export function parseSize(text: string, setting: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new Error(
      `${setting}=${text} is not a size: write a number of bytes, or with a unit: KiB, MiB, GiB, TiB (1024-based; also K, M, G, T) or KB, MB, GB, TB (1000-based), e.g. 1GiB or 512MiB`,
    );
  }
  return bytes;
}
