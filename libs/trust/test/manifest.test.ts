import { describe, expect, it } from 'vitest';
import { buildManifest, parseManifest } from '../src/index.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('manifest', () => {
  it('is a header, the patch name, then sha256 size name lines sorted by name, without SIGNATURE', () => {
    const text = buildManifest(
      'CLP1251123',
      new Map([
        ['payload/motd', { sha256: A, size: 12 }],
        ['PKGINFO.meta', { sha256: B, size: 300 }],
        ['SIGNATURE', { sha256: A, size: 1 }],
        ['payload/a file', { sha256: A, size: 0 }],
      ]),
    );
    expect(text).toBe(
      `clp-manifest 1\nname CLP1251123\n${B} 300 PKGINFO.meta\n${A} 0 payload/a file\n${A} 12 payload/motd\n`,
    );
  });

  it('round-trips through parseManifest', () => {
    const entries = new Map([
      ['x', { sha256: A, size: 1 }],
      ['é/ü', { sha256: B, size: 2 }],
    ]);
    const parsed = parseManifest(buildManifest('CLP250101', entries));
    expect(parsed.patchName).toBe('CLP250101');
    expect(parsed.entries).toEqual(entries);
  });

  it('refuses anything not in canonical form', () => {
    const good = `clp-manifest 1\nname CLP1251123\n${A} 1 a\n${B} 2 b\n`;
    expect(parseManifest(good).entries.size).toBe(2);
    const bad = [
      good.slice(0, -1),
      good.replace(/\n/g, '\r\n'),
      good.replace('clp-manifest 1', 'clp-manifest 2'),
      good.replace('name CLP1251123', 'name  CLP1251123'),
      `clp-manifest 1\nname CLP1251123\n${B} 2 b\n${A} 1 a\n`,
      `clp-manifest 1\nname CLP1251123\n${A} 1 a\n${A} 1 a\n`,
      `clp-manifest 1\nname CLP1251123\n${A} 01 a\n`,
      `clp-manifest 1\nname CLP1251123\n${A.toUpperCase()} 1 a\n`,
      `clp-manifest 1\nname CLP1251123\n${A} 1 SIGNATURE\n`,
      `clp-manifest 1\nname CLP1251123\n${A} 1 a\n\n`,
    ];
    for (const text of bad)
      expect(
        codeOf(() => parseManifest(text)),
        JSON.stringify(text),
      ).toBe('CLP_E_SIGNATURE_INVALID');
  });

  it('an entry name with a newline cannot be listed', () => {
    expect(codeOf(() => buildManifest('CLP1251123', new Map([['a\nb', { sha256: A, size: 1 }]])))).toBe(
      'CLP_E_MANIFEST_MISMATCH',
    );
  });
});
