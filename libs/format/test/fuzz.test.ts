/**
 * Property test of the reader: random bytes and mutated archives (bit flips, overwritten bytes,
 * truncations, splices) go through openPatch, hashEntries and extractTo. Whatever happens, the
 * reader may only succeed or reject with a coded error (CLP_E_…); it must not throw anything
 * else, hang, or write outside the folder it was given.
 *
 * Set CLP_FUZZ_SEED to replay a failing run; CLP_FUZZ_RUNS to run longer.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isClpError, openPatch } from '../src/index.ts';
import {
  buildTar,
  buildZip,
  DEFLATE,
  iniMeta,
  PAYLOAD,
  PAYLOAD_NAME,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  STORE,
  type TarEntrySpec,
  type TarEntryType,
  validTarEntries,
  validZipEntries,
  xmlMeta,
  type ZipEntrySpec,
} from './crafted.ts';

const RUNS = Number(process.env.CLP_FUZZ_RUNS ?? 0) || undefined;
const SEED = process.env.CLP_FUZZ_SEED === undefined ? undefined : Number(process.env.CLP_FUZZ_SEED);
/** A small archive is read in milliseconds; anything near this is a hang. */
const CASE_TIMEOUT_MS = 5_000;

let sandbox: string;
let caseNo = 0;
let archivesOpened = 0;

beforeAll(async () => {
  sandbox = await mkdtemp(join(tmpdir(), 'clp-fuzz-'));
});

/** Top-level names an absolute entry from the generators below could create at '/'. */
const ROOT_PROBES = ['payload', 'a', 'PKGINFO.meta', 'Install-Patch.ps1', 'é', ' ', 'evil'].map((n) =>
  join('/', n),
);
let rootBefore: boolean[];

beforeAll(() => {
  rootBefore = ROOT_PROBES.map((p) => existsSync(p));
});

afterAll(async () => {
  await rm(sandbox, { recursive: true, force: true });
  // An absolute name that got through would have landed at the root of the filesystem.
  expect(ROOT_PROBES.filter((p, i) => existsSync(p) && !rootBefore[i])).toEqual([]);
});

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, d.name);
    out.push(full);
    if (d.isDirectory()) out.push(...(await walk(full)));
  }
  return out;
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not settle within ${CASE_TIMEOUT_MS} ms`)),
      CASE_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Reads one archive the way the agent does. Returns normally when the reader accepted it or
 * refused it with a coded error; throws (failing the property) on anything else.
 */
async function readAsAgentWould(bytes: Uint8Array): Promise<void> {
  const caseDir = join(sandbox, `case-${++caseNo}`);
  // Deep enough that a name climbing with up to five '..' still lands inside caseDir, where it is seen.
  const ancestors = ['1', '2', '3', '4', '5'].map((_, i, all) => join(caseDir, ...all.slice(0, i + 1)));
  const out = join(ancestors.at(-1) as string, 'out');
  await mkdir(caseDir, { recursive: true });
  const file = join(caseDir, 'patch.clp');
  await writeFile(file, bytes);
  try {
    await withTimeout(
      (async () => {
        const archive = await openPatch(file, {
          limits: { maxTotalSize: 64 * 1024 * 1024, maxEntrySize: 64 * 1024 * 1024 },
        });
        archivesOpened++;
        try {
          const digests = await archive.hashEntries();
          await archive.extractTo(out, { expected: digests });
        } finally {
          await archive.close();
        }
      })(),
      `reading a ${bytes.length}-byte archive`,
    );
  } catch (error) {
    if (!isClpError(error)) {
      throw new Error(
        `the reader failed without a CLP_E_ code: ${error instanceof Error ? error.stack : String(error)}`,
      );
    }
  }
  const strays = (await walk(caseDir))
    .filter((p) => p !== file && !ancestors.includes(p) && p !== out && !p.startsWith(out + sep))
    .map((p) => relative(sandbox, p));
  if (strays.length > 0) throw new Error(`written outside the extraction folder: ${strays.join(', ')}`);
  const escaped = (await readdir(sandbox)).filter((n) => !n.startsWith('case-'));
  if (escaped.length > 0) throw new Error(`written into the sandbox itself: ${escaped.join(', ')}`);
  await rm(caseDir, { recursive: true, force: true });
}

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'splice'; at: number; remove: number; insert: Uint8Array }
  | { kind: 'copy'; from: number; to: number; length: number };

/**
 * Positions are fractions of the length (in millionths), so one arbitrary serves archives of any
 * size; unbiased, because fast-check's default bias would aim nearly every mutation at byte 0.
 */
const position = fc.noBias(fc.integer({ min: 0, max: 999_999 })).map((n) => n / 1_000_000);

const mutation: fc.Arbitrary<{ kind: Mutation['kind']; a: number; b: number; n: number; bytes: Uint8Array }> =
  fc.record({
    kind: fc.constantFrom<Mutation['kind']>(
      'flip',
      'flip',
      'flip',
      'set',
      'set',
      'splice',
      'copy',
      'truncate',
    ),
    a: position,
    b: position,
    n: fc.integer({ min: 0, max: 255 }),
    bytes: fc.uint8Array({ maxLength: 64 }),
  });

function applyMutations(
  base: Buffer,
  mutations: ReadonlyArray<{ kind: Mutation['kind']; a: number; b: number; n: number; bytes: Uint8Array }>,
): Buffer {
  let buf = Buffer.from(base);
  for (const m of mutations) {
    if (buf.length === 0) break;
    const at = Math.floor(m.a * buf.length);
    switch (m.kind) {
      case 'flip':
        buf[at] = (buf[at] ?? 0) ^ (1 << (m.n % 8));
        break;
      case 'set':
        // Interesting values for length and count fields: 0, 0xff, and whatever n is.
        buf[at] = [0, 0xff, m.n][m.n % 3] ?? 0;
        break;
      case 'truncate':
        buf = buf.subarray(0, at);
        break;
      case 'splice':
        buf = Buffer.concat([
          buf.subarray(0, at),
          m.bytes,
          buf.subarray(Math.min(buf.length, at + (m.n % 32))),
        ]);
        break;
      case 'copy': {
        const to = Math.floor(m.b * buf.length);
        const length = Math.min(m.n % 64, buf.length - at, buf.length - to);
        buf.copy(buf, to, at, at + length);
        break;
      }
    }
  }
  return buf;
}

const mutations = fc.array(mutation, { minLength: 1, maxLength: 4 });

/** Name segments an attacker would try, mixed with ordinary ones. */
const segment = fc.constantFrom(
  'payload',
  'a',
  'PKGINFO.meta',
  'Install-Patch.ps1',
  '..',
  '.',
  '',
  'C:',
  '\\',
  'a\u0000b',
  'é',
  'x'.repeat(300),
  ' ',
);
const entryName = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
const unixType = fc.constantFrom(S_IFREG, S_IFREG, S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFIFO, 0);

const zipEntrySpec: fc.Arbitrary<ZipEntrySpec> = fc.record(
  {
    name: fc.oneof(entryName, fc.constantFrom('PKGINFO.meta', PAYLOAD_NAME)),
    data: fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.constant(PAYLOAD),
      fc.constant(Buffer.from(xmlMeta())),
    ),
    method: fc.constantFrom(STORE, DEFLATE, DEFLATE, 12, 99),
    mode: unixType.map((t) => t | 0o644),
    madeBy: fc.constantFrom(3, 3, 0, 19),
    flags: fc.constantFrom(0x0800, 0x0800, 0x0801, 0x0808, 0),
    dataDescriptor: fc.boolean(),
    crc: fc.integer({ min: 0, max: 0xffffffff }),
    uncompressedSize: fc.integer({ min: 0, max: 0xffffffff }),
    compressedSize: fc.integer({ min: 0, max: 0xffffffff }),
  },
  { requiredKeys: ['name', 'data'] },
);

const tarEntrySpec: fc.Arbitrary<TarEntrySpec> = fc.record(
  {
    name: fc.oneof(entryName, fc.constantFrom('PKGINFO.meta', 'Install-Patch.ps1', './PKGINFO.meta')),
    type: fc.constantFrom<TarEntryType>(
      'file',
      'file',
      'file',
      'directory',
      'symlink',
      'link',
      'character-device',
      'fifo',
    ),
    data: fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.constant(Buffer.from(iniMeta())),
    ),
    linkname: fc.constantFrom('../../etc/passwd', '/etc/shadow', 'PKGINFO.meta'),
  },
  { requiredKeys: ['name'] },
);

function params(numRuns: number): fc.Parameters<unknown> {
  return { numRuns: RUNS ?? numRuns, ...(SEED === undefined ? {} : { seed: SEED }), endOnFailure: true };
}

describe('the archive reader under random and mutated input', () => {
  let zipBases: Buffer[];
  let tarBase: Buffer;

  beforeAll(async () => {
    zipBases = [
      buildZip(validZipEntries()),
      buildZip(
        validZipEntries().map((e) => ({ ...e, dataDescriptor: true })),
        { comment: Buffer.from('comment') },
      ),
      buildZip([
        ...validZipEntries(
          xmlMeta({ extra: '\n  <Systems><System os="vincent" min-version="1"/></Systems>' }),
        ),
        { name: 'payload/stored.bin', data: PAYLOAD, method: STORE },
        { name: 'payload/link', data: Buffer.from('/etc/passwd'), method: STORE, mode: S_IFLNK | 0o777 },
      ]),
    ];
    tarBase = await buildTar(validTarEntries());
  });

  it('random bytes, behind zip, gzip or no magic', async () => {
    const magic = fc.constantFrom(
      Buffer.alloc(0),
      Buffer.from([0x50, 0x4b, 0x03, 0x04]),
      Buffer.from([0x50, 0x4b, 0x05, 0x06]),
      Buffer.from([0x1f, 0x8b, 0x08, 0x00]),
    );
    await fc.assert(
      fc.asyncProperty(magic, fc.uint8Array({ maxLength: 2048 }), async (head, body) => {
        await readAsAgentWould(Buffer.concat([head, body]));
      }),
      params(100),
    );
  });

  it('mutated zip archives', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 2 }), mutations, async (which, ms) => {
        await readAsAgentWould(applyMutations(zipBases[which] as Buffer, ms));
      }),
      params(150),
    );
  });

  it('zip archives generated from hostile entry specs (names, modes, methods, flags, lying sizes)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(zipEntrySpec, { maxLength: 6 }), fc.boolean(), async (specs, withValid) => {
        await readAsAgentWould(buildZip(withValid ? [...validZipEntries(), ...specs] : specs));
      }),
      params(100),
    );
  });

  it('tar.gz archives generated from hostile entry specs (names, links, devices)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(tarEntrySpec, { maxLength: 6 }), fc.boolean(), async (specs, withValid) => {
        await readAsAgentWould(
          gzipSync(await buildTar(withValid ? [...validTarEntries(), ...specs] : specs)),
        );
      }),
      params(50),
    );
  });

  it('mutated tar.gz archives: damaged gzip, and damaged tar inside good gzip', async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), mutations, async (insideGzip, ms) => {
        const bytes = insideGzip
          ? gzipSync(applyMutations(tarBase, ms))
          : applyMutations(gzipSync(tarBase), ms);
        await readAsAgentWould(bytes);
      }),
      params(100),
    );
  });

  it('the unmutated bases are accepted, so the properties above exercise more than the first check', async () => {
    const before = archivesOpened;
    for (const base of zipBases.slice(0, 2)) await readAsAgentWould(base);
    await readAsAgentWould(gzipSync(tarBase));
    expect(archivesOpened - before).toBe(3);
    expect(gunzipSync(gzipSync(tarBase))).toEqual(tarBase);
  });
});
