/**
 * The hostile-archive suite: every rule of the limits of docs/patch-format.md meets an
 * archive built here to break it. Each case asserts the exact error code, that the message names
 * the entry (or the archive, when no single entry is at fault), and that nothing was written
 * outside the test's own temporary folder.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type ArchiveLimits,
  type EntryDigest,
  FORMAT_ERROR_CODES,
  isClpError,
  openPatch,
  SMALL_ENTRY_BYTES,
} from '../src/index.ts';
import {
  buildTar,
  buildTarGz,
  buildZip,
  DEFLATE,
  INSTALL_SCRIPT,
  iniMeta,
  PAYLOAD,
  PAYLOAD_NAME,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  STORE,
  sha256,
  sparseNoise,
  type TarEntrySpec,
  unicodePathExtra,
  validTarEntries,
  validZipEntries,
  withBase256Size,
  xmlMeta,
  type ZipEntrySpec,
  zip64Extra,
} from './crafted.ts';

let sandbox: string;
/** Every code some case below expects, gathered while the suite is collected. */
const exercised = new Set<string>();
/** Codes no archive can cause: they are about a source folder, not a .clp. */
const NOT_FROM_AN_ARCHIVE = new Set(['CLP_E_SOURCE_DIR']);

beforeEach(async () => {
  sandbox = await mkdtemp(join(tmpdir(), 'clp-hostile-'));
});

afterEach(async () => {
  await rm(sandbox, { recursive: true, force: true });
});

/** Where archives are written, and where they are extracted: deep enough that '../' lands in the sandbox. */
const inbox = (): string => join(sandbox, 'in');
const outDir = (): string => join(sandbox, 'x', 'y', 'out');

async function place(bytes: Buffer, name = 'patch.clp'): Promise<string> {
  await mkdir(inbox(), { recursive: true });
  const file = join(inbox(), name);
  await writeFile(file, bytes);
  return file;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, d.name);
    out.push(full);
    if (d.isDirectory()) out.push(...(await walk(full)));
  }
  return out;
}

/** Every path in the sandbox that is neither the input archive nor under the extraction folder. */
async function strays(): Promise<string[]> {
  const allowedFolders = [inbox(), join(sandbox, 'x'), join(sandbox, 'x', 'y'), outDir()];
  return (await walk(sandbox))
    .filter(
      (p) => !allowedFolders.includes(p) && !p.startsWith(inbox() + sep) && !p.startsWith(outDir() + sep),
    )
    .map((p) => relative(sandbox, p));
}

async function caught(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a rejection, but the promise resolved');
}

interface Case {
  title: string;
  build: () => Buffer | Promise<Buffer>;
  code: string;
  /** Text the message must contain: the entry's name as the reader shows it. */
  names: string | (() => string);
  limits?: Partial<ArchiveLimits>;
}

/** The archive is refused by openPatch itself: nothing can be read or written from it. */
async function expectRefusedOnOpen(c: Case): Promise<void> {
  const file = await place(await c.build());
  const error = await caught(
    openPatch(file, c.limits ? { limits: c.limits } : {}).then(async (archive) => {
      await archive.close();
      throw new Error(`openPatch accepted it, listing ${archive.entries.length} entries`);
    }),
  );
  expect(isClpError(error), `${error}`).toBe(true);
  expect(error).toMatchObject({ code: c.code });
  expect(error.message).toContain(typeof c.names === 'function' ? c.names() : c.names);
  expect(await strays()).toEqual([]);
  expect(existsSync(outDir())).toBe(false);
}

/** Opens an entry stream and reads it to its end, returning the error either step failed with. */
async function streamError(open: () => Promise<Readable>): Promise<Error & { code?: string }> {
  return caught(
    (async () => {
      for await (const _ of await open()) {
        // drain
      }
    })(),
  );
}

/**
 * The archive's headers pass, but its bytes do not: every way of reading the entry (hashing,
 * extracting, readEntry, openEntryStream) must fail with the code, and the bad entry must not be
 * left behind in the extraction folder.
 */
async function expectRefusedOnRead(c: Case & { entry: string }): Promise<void> {
  const file = await place(await c.build());
  const archive = await openPatch(file, c.limits ? { limits: c.limits } : {});
  try {
    const names = typeof c.names === 'function' ? c.names() : c.names;
    const hashError = await caught(archive.hashEntries());
    expect(hashError).toMatchObject({ code: c.code });
    expect(hashError.message).toContain(names);
    const extractError = await caught(archive.extractTo(outDir()));
    expect(extractError).toMatchObject({ code: c.code });
    expect(extractError.message).toContain(names);
    expect(existsSync(join(outDir(), ...c.entry.split('/')))).toBe(false);
    const readError = await caught(archive.readEntry(c.entry, 64 * 1024 * 1024));
    expect(readError).toMatchObject({ code: c.code });
    expect(readError.message).toContain(names);
    const streamed = await streamError(() => archive.openEntryStream(c.entry));
    expect(streamed).toMatchObject({ code: c.code });
    expect(streamed.message).toContain(names);
    // Installing reads through readVerified (small) or writeVerified (large), checked against a
    // signed digest (here one the entry cannot match, so only the entry's own fault can come first).
    const size = archive.entries.find((e) => e.name === c.entry)?.size ?? 0;
    const expected = new Map([[c.entry, { sha256: '0'.repeat(64), size }]]);
    const written: Buffer[] = [];
    const verified = await caught(
      size <= SMALL_ENTRY_BYTES
        ? archive.readVerified([c.entry], expected, (_name, data) => {
            written.push(data);
          })
        : archive.writeVerified(c.entry, expected, async () => {}),
    );
    // Against a signed sha256 the CRC-32 is not computed (it adds nothing): the digest refuses those.
    const codes = c.title.includes('CRC') ? [c.code, 'CLP_E_HASH_MISMATCH'] : [c.code];
    expect(codes).toContain((verified as { code?: string }).code);
    expect(verified.message).toContain(names);
    expect(written).toEqual([]);
  } finally {
    await archive.close();
  }
  expect(await strays()).toEqual([]);
}

const zip = (entries: ZipEntrySpec[], options?: Parameters<typeof buildZip>[1]) => () =>
  buildZip(entries, options);
const withZipEntry = (extra: ZipEntrySpec) => zip([...validZipEntries(), extra]);
const tarGz = (entries: TarEntrySpec[]) => () => buildTarGz(entries);
const withTarEntry = (extra: TarEntrySpec) => tarGz([...validTarEntries(), extra]);
const metaZip = (meta: string, extra: ZipEntrySpec[] = []) => zip([...validZipEntries(meta), ...extra]);

/** 4 MiB of zeros deflate to about 4 KiB: a ratio near 1000:1. */
const ZEROS = Buffer.alloc(4 * 1024 * 1024);

describe('hostile zip archives, refused when opened', () => {
  const cases: Case[] = [
    {
      title: "a '../' name climbing out",
      build: withZipEntry({ name: '../../evil', data: PAYLOAD }),
      code: 'CLP_E_PATH_TRAVERSAL',
      names: '../../evil',
    },
    {
      title: "a '..' segment in the middle of a name",
      build: withZipEntry({ name: 'payload/../../../evil', data: PAYLOAD }),
      code: 'CLP_E_PATH_TRAVERSAL',
      names: 'payload/../../../evil',
    },
    {
      title: "a folder entry named '../'",
      build: withZipEntry({ name: '../', method: STORE, mode: S_IFDIR | 0o755 }),
      code: 'CLP_E_PATH_TRAVERSAL',
      names: '../',
    },
    {
      title: 'an absolute name pointing into the sandbox',
      build: () => buildZip([...validZipEntries(), { name: join(sandbox, 'abs-evil'), data: PAYLOAD }]),
      code: 'CLP_E_ABSOLUTE_PATH',
      names: () => join(sandbox, 'abs-evil'),
    },
    {
      title: 'a drive-letter name',
      build: withZipEntry({ name: 'C:/Windows/evil.dll', data: PAYLOAD }),
      code: 'CLP_E_ABSOLUTE_PATH',
      names: 'C:/Windows/evil.dll',
    },
    {
      title: 'backslashes hiding a traversal',
      build: withZipEntry({ name: '..\\..\\evil', data: PAYLOAD }),
      code: 'CLP_E_BAD_PATH',
      names: JSON.stringify('..\\..\\evil'),
    },
    {
      title: 'a NUL byte in a name',
      build: withZipEntry({ name: 'payload/a\0.conf', data: PAYLOAD }),
      code: 'CLP_E_BAD_PATH',
      names: 'payload/a\\u0000.conf',
    },
    {
      title: 'a newline in a name',
      build: withZipEntry({ name: 'payload/a\nb', data: PAYLOAD }),
      code: 'CLP_E_BAD_PATH',
      names: 'payload/a\\nb',
    },
    {
      title: 'a name that is not valid UTF-8',
      build: withZipEntry({ name: Buffer.from([0x70, 0x2f, 0xff, 0xfe, 0x2e, 0x63]), data: PAYLOAD }),
      code: 'CLP_E_BAD_PATH',
      names: 'p/',
    },
    {
      title: "a '.' segment",
      build: withZipEntry({ name: 'payload/./x.conf', data: PAYLOAD }),
      code: 'CLP_E_BAD_PATH',
      names: 'payload/./x.conf',
    },
    {
      title: 'an empty segment',
      build: withZipEntry({ name: 'payload//x.conf', data: PAYLOAD }),
      code: 'CLP_E_BAD_PATH',
      names: 'payload//x.conf',
    },
    {
      title: 'a name longer than 1024 bytes',
      build: withZipEntry({ name: `payload/${'a/'.repeat(600)}x`, data: PAYLOAD }),
      code: 'CLP_E_BAD_PATH',
      names: 'payload/a/a/',
    },
    {
      title: 'an empty name',
      build: withZipEntry({ name: '', data: PAYLOAD }),
      code: 'CLP_E_BAD_PATH',
      names: '""',
    },
    {
      title: "a name that is just '/'",
      build: withZipEntry({ name: '/', data: PAYLOAD }),
      code: 'CLP_E_BAD_PATH',
      names: '"/"',
    },
    {
      title: "a Unicode Path extra field that renames an innocent entry to '../../evil'",
      build: withZipEntry({
        name: 'payload/innocent',
        data: PAYLOAD,
        extra: unicodePathExtra('payload/innocent', '../../evil'),
      }),
      code: 'CLP_E_PATH_TRAVERSAL',
      names: '../../evil',
    },
    {
      title: 'a path segment longer than 255 bytes',
      build: withZipEntry({ name: `payload/${'x'.repeat(256)}`, data: PAYLOAD }),
      code: 'CLP_E_BAD_PATH',
      names: 'xxxxxxxx',
    },
    {
      title: 'a symbolic link entry (unix mode 0120777)',
      build: withZipEntry({
        name: 'payload/passwd',
        data: Buffer.from('/etc/passwd'),
        method: STORE,
        mode: S_IFLNK | 0o777,
      }),
      code: 'CLP_E_LINK_ENTRY',
      names: 'payload/passwd',
    },
    {
      // Info-ZIP unzip reads unix modes from "made by macOS" (19) entries and extracts this as a link.
      title: 'a symbolic link from a zip made on macOS (made-by host 19)',
      build: withZipEntry({
        name: 'payload/mac-link',
        data: Buffer.from('/etc/passwd'),
        method: STORE,
        mode: S_IFLNK | 0o777,
        madeBy: 19,
      }),
      code: 'CLP_E_LINK_ENTRY',
      names: 'payload/mac-link',
    },
    {
      title: 'a symbolic link mode in a zip that claims to be made on MS-DOS',
      build: withZipEntry({
        name: 'payload/dos-link',
        data: Buffer.from('/etc/passwd'),
        method: STORE,
        mode: S_IFLNK | 0o777,
        madeBy: 0,
      }),
      code: 'CLP_E_LINK_ENTRY',
      names: 'payload/dos-link',
    },
    {
      title: 'PKGINFO.meta itself as a symbolic link',
      build: zip([
        { name: 'PKGINFO.meta', data: Buffer.from('/etc/shadow'), method: STORE, mode: S_IFLNK | 0o777 },
        { name: PAYLOAD_NAME, data: PAYLOAD },
      ]),
      code: 'CLP_E_LINK_ENTRY',
      names: 'PKGINFO.meta',
    },
    {
      title: 'a character device entry',
      build: withZipEntry({ name: 'payload/null', mode: S_IFCHR | 0o666 }),
      code: 'CLP_E_SPECIAL_ENTRY',
      names: 'payload/null',
    },
    {
      title: 'a block device entry',
      build: withZipEntry({ name: 'payload/sda', mode: S_IFBLK | 0o660 }),
      code: 'CLP_E_SPECIAL_ENTRY',
      names: 'payload/sda',
    },
    {
      title: 'a fifo entry',
      build: withZipEntry({ name: 'payload/fifo', mode: S_IFIFO | 0o644 }),
      code: 'CLP_E_SPECIAL_ENTRY',
      names: 'payload/fifo',
    },
    {
      title: 'a socket entry',
      build: withZipEntry({ name: 'payload/sock', mode: S_IFSOCK | 0o644 }),
      code: 'CLP_E_SPECIAL_ENTRY',
      names: 'payload/sock',
    },
    {
      title: 'the same name twice (the second would overwrite the first)',
      build: withZipEntry({ name: PAYLOAD_NAME, data: Buffer.from('PermitRootLogin yes\n') }),
      code: 'CLP_E_DUPLICATE_ENTRY',
      names: PAYLOAD_NAME,
    },
    {
      title: 'a name that is both a file and a folder',
      build: withZipEntry({ name: `${PAYLOAD_NAME}/inner`, data: PAYLOAD }),
      code: 'CLP_E_DUPLICATE_ENTRY',
      names: `${PAYLOAD_NAME}/inner`,
    },
    {
      title: 'a file and a folder entry of the same name',
      build: withZipEntry({ name: `${PAYLOAD_NAME}/`, method: STORE, mode: S_IFDIR | 0o755 }),
      code: 'CLP_E_DUPLICATE_ENTRY',
      names: PAYLOAD_NAME,
    },
    {
      title: 'more entries than the limit',
      build: zip([
        ...validZipEntries(),
        ...[1, 2, 3, 4].map((i) => ({ name: `payload/extra-${i}`, data: PAYLOAD })),
      ]),
      limits: { maxEntries: 4 },
      code: 'CLP_E_TOO_MANY_ENTRIES',
      names: 'patch.clp',
    },
    {
      title: 'an end record claiming 65535 entries',
      build: zip(validZipEntries(), { entryCount: 0xffff }),
      code: 'CLP_E_TOO_MANY_ENTRIES',
      names: 'patch.clp',
    },
    {
      title: '10,001 entries against the default limit of 10,000',
      build: zip([
        ...validZipEntries(),
        ...Array.from({ length: 9_999 }, (_, i) => ({
          name: `payload/f${i}`,
          data: Buffer.from('x'),
          method: STORE,
        })),
      ]),
      code: 'CLP_E_TOO_MANY_ENTRIES',
      names: 'patch.clp',
    },
    {
      title: 'a zip64 size field claiming 4 EiB',
      build: withZipEntry({
        name: 'payload/huge',
        data: PAYLOAD,
        uncompressedSize: 0xffffffff,
        compressedSize: 0xffffffff,
        extra: zip64Extra(1n << 62n, 29n),
      }),
      code: 'CLP_E_TOO_LARGE',
      names: 'payload/huge',
    },
    {
      title: 'an entry larger than the per-entry limit',
      build: withZipEntry({ name: 'payload/big.bin', data: Buffer.alloc(4096, 7), method: STORE }),
      limits: { maxEntrySize: 4000 },
      code: 'CLP_E_TOO_LARGE',
      names: 'payload/big.bin',
    },
    {
      title: 'entries that together exceed the total limit',
      build: zip([
        ...validZipEntries(),
        ...[1, 2, 3].map((i) => ({ name: `payload/part-${i}`, data: Buffer.alloc(3000, i), method: STORE })),
      ]),
      limits: { maxTotalSize: 8000 },
      code: 'CLP_E_TOO_LARGE',
      names: 'payload/part-3',
    },
    {
      title: 'a zip bomb: 4 MiB of zeros in 4 KiB (ratio ~1000:1)',
      build: withZipEntry({ name: 'payload/zeros.bin', data: ZEROS, method: DEFLATE }),
      code: 'CLP_E_ZIP_BOMB',
      names: 'payload/zeros.bin',
    },
    {
      title: "overlapping entries: 50 central records sharing one 1.1 MiB body (Fifield's zip bomb)",
      build: () => {
        const base = validZipEntries();
        const body = { name: 'payload/kernel', data: sparseNoise(1100 * 1024, 250) };
        const copies = Array.from({ length: 50 }, (_, i) => ({
          name: `payload/copy-${i}`,
          overlapWith: base.length,
        }));
        return buildZip([...base, body, ...copies]);
      },
      code: 'CLP_E_ZIP_BOMB',
      names: 'patch.clp',
    },
    {
      title: 'a ZipCrypto-encrypted entry (flag bit 0, 12-byte encryption header)',
      build: withZipEntry({
        name: 'payload/secret',
        data: PAYLOAD,
        method: STORE,
        flags: 0x0801,
        rawData: Buffer.concat([Buffer.alloc(12, 0x5a), PAYLOAD]),
      }),
      code: 'CLP_E_ENCRYPTED_ENTRY',
      names: 'payload/secret',
    },
    {
      title: 'an AES-encrypted entry (method 99 with flag bit 0)',
      build: withZipEntry({ name: 'payload/aes', data: PAYLOAD, method: 99, flags: 0x0801 }),
      code: 'CLP_E_ENCRYPTED_ENTRY',
      names: 'payload/aes',
    },
    {
      title: 'compression method 99 without the encryption flag',
      build: withZipEntry({ name: 'payload/m99', data: PAYLOAD, method: 99 }),
      code: 'CLP_E_UNSUPPORTED_COMPRESSION',
      names: 'payload/m99',
    },
    {
      title: 'bzip2 compression (method 12)',
      build: withZipEntry({ name: 'payload/bz', data: PAYLOAD, method: 12 }),
      code: 'CLP_E_UNSUPPORTED_COMPRESSION',
      names: 'payload/bz',
    },
    {
      title: 'LZMA compression (method 14)',
      build: withZipEntry({ name: 'payload/lz', data: PAYLOAD, method: 14 }),
      code: 'CLP_E_UNSUPPORTED_COMPRESSION',
      names: 'payload/lz',
    },
    {
      title: 'random bytes',
      build: () => Buffer.from('this is a text file, not a patch\n'.repeat(40)),
      code: 'CLP_E_NOT_AN_ARCHIVE',
      names: 'patch.clp',
    },
    {
      title: 'an empty file',
      build: () => Buffer.alloc(0),
      code: 'CLP_E_NOT_AN_ARCHIVE',
      names: 'patch.clp',
    },
    {
      title: 'a local header signature and then nothing but garbage (no end record)',
      build: () => Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(2000, 0x41)]),
      code: 'CLP_E_TRUNCATED',
      names: 'patch.clp',
    },
    {
      title: 'a zip behind a self-extractor stub',
      build: zip(validZipEntries(), { prefix: Buffer.from('#!/bin/sh\nexit 0\n') }),
      code: 'CLP_E_NOT_AN_ARCHIVE',
      names: 'patch.clp',
    },
    {
      title: 'an end record whose comment length runs past the file',
      build: zip(validZipEntries(), { comment: Buffer.from('garbage'), commentLength: 400 }),
      code: 'CLP_E_NOT_AN_ARCHIVE',
      names: 'patch.clp',
    },
    {
      title: 'a zip cut off in the middle (the end record is gone)',
      build: () => {
        const whole = buildZip(validZipEntries());
        return whole.subarray(0, Math.floor(whole.length / 2));
      },
      code: 'CLP_E_TRUNCATED',
      names: 'patch.clp',
    },
    {
      title: 'a central directory that starts past the end of the file',
      build: zip(validZipEntries(), { centralOffset: 1_000_000 }),
      code: 'CLP_E_TRUNCATED',
      names: 'patch.clp',
    },
    {
      title: 'an end record claiming more entries than the central directory holds',
      build: zip(validZipEntries(), { entryCount: 5 }),
      code: 'CLP_E_TRUNCATED',
      names: 'patch.clp',
    },
    {
      title: 'an end record claiming fewer entries than there are (the hidden payload is not read)',
      build: zip(validZipEntries(), { entryCount: 2 }),
      code: 'CLP_E_MISSING_SOURCE',
      names: PAYLOAD_NAME,
    },
    {
      title: 'a stored entry whose two sizes disagree (the message must name the entry)',
      build: withZipEntry({
        name: 'payload/short',
        data: PAYLOAD,
        method: STORE,
        uncompressedSize: PAYLOAD.length + 10,
      }),
      code: 'CLP_E_CORRUPT_ENTRY',
      names: 'payload/short',
    },
    {
      title: 'PKGINFO.meta with a bad CRC',
      build: zip([
        { name: 'PKGINFO.meta', data: Buffer.from(xmlMeta()), crc: 0xdeadbeef },
        { name: PAYLOAD_NAME, data: PAYLOAD },
      ]),
      code: 'CLP_E_CORRUPT_ENTRY',
      names: 'PKGINFO.meta',
    },
    {
      title: 'PKGINFO.meta that inflates past its declared size',
      build: zip([
        { name: 'PKGINFO.meta', data: Buffer.from(xmlMeta() + ' '.repeat(100_000)), uncompressedSize: 500 },
        { name: PAYLOAD_NAME, data: PAYLOAD },
      ]),
      code: 'CLP_E_ZIP_BOMB',
      names: 'PKGINFO.meta',
    },
    {
      title: 'no PKGINFO.meta',
      build: zip([{ name: PAYLOAD_NAME, data: PAYLOAD }]),
      code: 'CLP_E_MISSING_PKGINFO',
      names: 'PKGINFO.meta',
    },
    {
      title: 'PKGINFO.meta spelled in lower case',
      build: zip([
        { name: 'pkginfo.meta', data: Buffer.from(xmlMeta()) },
        { name: PAYLOAD_NAME, data: PAYLOAD },
      ]),
      code: 'CLP_E_MISSING_PKGINFO',
      names: 'PKGINFO.meta',
    },
    {
      title: 'PKGINFO.meta as a folder',
      build: zip([
        { name: 'PKGINFO.meta/', method: STORE, mode: S_IFDIR | 0o755 },
        { name: PAYLOAD_NAME, data: PAYLOAD },
      ]),
      code: 'CLP_E_MISSING_PKGINFO',
      names: 'PKGINFO.meta',
    },
    {
      title: 'PKGINFO.meta only in a sub-folder',
      build: zip([
        { name: 'payload/PKGINFO.meta', data: Buffer.from(xmlMeta()) },
        { name: PAYLOAD_NAME, data: PAYLOAD },
      ]),
      code: 'CLP_E_MISSING_PKGINFO',
      names: 'PKGINFO.meta',
    },
    {
      title: 'PKGINFO.meta larger than a given limit',
      build: metaZip(xmlMeta()),
      limits: { maxMetaSize: 100 },
      code: 'CLP_E_PKGINFO_TOO_LARGE',
      names: 'PKGINFO.meta',
    },
    {
      title: 'PKGINFO.meta larger than the default 1 MiB',
      build: zip([
        {
          name: 'PKGINFO.meta',
          data: Buffer.from(xmlMeta({ extra: `\n  <!-- ${'x'.repeat(1024 * 1024)} -->` })),
          method: STORE,
        },
        { name: PAYLOAD_NAME, data: PAYLOAD },
      ]),
      code: 'CLP_E_PKGINFO_TOO_LARGE',
      names: 'PKGINFO.meta',
    },
    {
      title: 'malformed XML',
      build: metaZip('<?xml version="1.0"?>\n<Package><Name>CLP1251123</Name>\n'),
      code: 'CLP_E_XML_MALFORMED',
      names: 'PKGINFO.meta',
    },
    {
      title: 'PKGINFO.meta that is not UTF-8',
      build: zip([
        { name: 'PKGINFO.meta', data: Buffer.from([0x3c, 0x50, 0xff, 0xfe, 0x3e]) },
        { name: PAYLOAD_NAME, data: PAYLOAD },
      ]),
      code: 'CLP_E_XML_MALFORMED',
      names: 'PKGINFO.meta',
    },
    {
      title: 'a DOCTYPE with an external DTD',
      build: metaZip(
        xmlMeta().replace('<Package>', '<!DOCTYPE Package SYSTEM "http://127.0.0.1:9/evil.dtd">\n<Package>'),
      ),
      code: 'CLP_E_XML_DTD',
      names: 'PKGINFO.meta',
    },
    {
      title: 'billion laughs (refused at its DTD, before any expansion)',
      build: metaZip(billionLaughs()),
      code: 'CLP_E_XML_DTD',
      names: 'PKGINFO.meta',
    },
    {
      title: 'an external entity declared without a DOCTYPE',
      build: metaZip(xmlMeta().replace('<Package>', '<!ENTITY xxe SYSTEM "file:///etc/passwd">\n<Package>')),
      code: 'CLP_E_XML_ENTITY',
      names: 'PKGINFO.meta',
    },
    {
      title: 'a reference to an entity nobody declared',
      build: metaZip(xmlMeta().replace('crafted test patch', '&xxe;')),
      code: 'CLP_E_XML_ENTITY',
      names: 'PKGINFO.meta',
    },
    {
      title: 'an unknown architecture',
      build: metaZip(xmlMeta().replace('<Architecture>any', '<Architecture>sparc')),
      code: 'CLP_E_PKGINFO_INVALID',
      names: 'Architecture',
    },
    {
      title: 'a patch name off the CLP rule',
      build: metaZip(xmlMeta({ name: 'KB5034441' })),
      code: 'CLP_E_BAD_NAME',
      names: 'KB5034441',
    },
    {
      title: 'an action whose source is not in the archive',
      build: metaZip(xmlMeta({ source: 'payload/missing.conf' })),
      code: 'CLP_E_MISSING_SOURCE',
      names: 'payload/missing.conf',
    },
    {
      title: 'no actions and no install script',
      build: metaZip(xmlMeta({ actions: '' })),
      code: 'CLP_E_EMPTY_PATCH',
      names: 'CLP1251123',
    },
  ];

  for (const c of cases) exercised.add(c.code);
  it.each(cases)('$title → $code', async (c) => {
    await expectRefusedOnOpen(c);
  });
});

describe('hostile zip archives, refused when their bytes are read', () => {
  const cases: Array<Case & { entry: string }> = [
    {
      title: 'a payload with a bad CRC',
      build: withZipEntry({ name: 'payload/crc.conf', data: PAYLOAD, crc: 0x12345678 }),
      code: 'CLP_E_CORRUPT_ENTRY',
      names: 'payload/crc.conf',
      entry: 'payload/crc.conf',
    },
    {
      title: 'a payload with a bad CRC in its data descriptor',
      build: withZipEntry({ name: 'payload/dd.conf', data: PAYLOAD, crc: 1, dataDescriptor: true }),
      code: 'CLP_E_CORRUPT_ENTRY',
      names: 'payload/dd.conf',
      entry: 'payload/dd.conf',
    },
    {
      title: 'a deflate stream that is garbage',
      build: withZipEntry({
        name: 'payload/garbage',
        data: PAYLOAD,
        rawData: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x13, 0x37]),
      }),
      code: 'CLP_E_CORRUPT_ENTRY',
      names: 'payload/garbage',
      entry: 'payload/garbage',
    },
    {
      title: 'a payload that inflates past its declared size (a lying zip bomb)',
      build: withZipEntry({ name: 'payload/liar.bin', data: ZEROS, uncompressedSize: 1000 }),
      code: 'CLP_E_ZIP_BOMB',
      names: 'payload/liar.bin',
      entry: 'payload/liar.bin',
    },
    {
      title: 'a payload that inflates to less than its declared size',
      build: withZipEntry({ name: 'payload/short', data: PAYLOAD, uncompressedSize: PAYLOAD.length + 10 }),
      code: 'CLP_E_TRUNCATED',
      names: 'payload/short',
      entry: 'payload/short',
    },
    {
      title: 'compressed data that runs past the end of the file',
      build: withZipEntry({
        name: 'payload/overrun',
        data: PAYLOAD,
        method: STORE,
        compressedSize: 5_000_000,
        uncompressedSize: 5_000_000,
      }),
      limits: { maxRatio: 1_000_000 },
      code: 'CLP_E_CORRUPT_ENTRY',
      names: 'payload/overrun',
      entry: 'payload/overrun',
    },
    {
      title: 'a zip64 compressed size of 1 TiB in a 4 KiB file',
      build: withZipEntry({
        name: 'payload/lie',
        data: PAYLOAD,
        uncompressedSize: 0xffffffff,
        compressedSize: 0xffffffff,
        extra: zip64Extra(BigInt(PAYLOAD.length), 1n << 40n),
      }),
      code: 'CLP_E_CORRUPT_ENTRY',
      names: 'payload/lie',
      entry: 'payload/lie',
    },
  ];

  for (const c of cases) exercised.add(c.code);
  it.each(cases)('$title → $code', async (c) => {
    await expectRefusedOnRead(c);
  });
});

describe('hostile historic tar.gz archives', () => {
  const cases: Case[] = [
    {
      title: 'a symbolic link',
      build: withTarEntry({ name: 'payload-link', type: 'symlink', linkname: '/etc/shadow' }),
      code: 'CLP_E_LINK_ENTRY',
      names: 'payload-link',
    },
    {
      title: 'a hard link',
      build: withTarEntry({ name: 'hard', type: 'link', linkname: 'Install-Patch.ps1' }),
      code: 'CLP_E_LINK_ENTRY',
      names: 'hard',
    },
    {
      title: "a PAX header whose path overrides an innocent name with '../../evil'",
      build: withTarEntry({ name: 'innocent', data: PAYLOAD, pax: { path: '../../evil' } }),
      code: 'CLP_E_PATH_TRAVERSAL',
      names: '../../evil',
    },
    {
      title: 'a symbolic link hidden behind a PAX linkpath',
      build: withTarEntry({
        name: 'innocent-link',
        type: 'symlink',
        linkname: 'x',
        pax: { linkpath: '/etc/shadow' },
      }),
      code: 'CLP_E_LINK_ENTRY',
      names: 'innocent-link',
    },
    {
      title: "a '../' name",
      build: withTarEntry({ name: '../../evil', data: PAYLOAD }),
      code: 'CLP_E_PATH_TRAVERSAL',
      names: '../../evil',
    },
    {
      title: 'an absolute name pointing into the sandbox',
      build: () => buildTarGz([...validTarEntries(), { name: join(sandbox, 'abs-evil'), data: PAYLOAD }]),
      code: 'CLP_E_ABSOLUTE_PATH',
      names: () => join(sandbox, 'abs-evil'),
    },
    {
      title: 'a character device',
      build: withTarEntry({ name: 'null', type: 'character-device' }),
      code: 'CLP_E_SPECIAL_ENTRY',
      names: 'null',
    },
    {
      title: 'a block device',
      build: withTarEntry({ name: 'sda', type: 'block-device' }),
      code: 'CLP_E_SPECIAL_ENTRY',
      names: 'sda',
    },
    {
      title: 'a fifo',
      build: withTarEntry({ name: 'fifo', type: 'fifo' }),
      code: 'CLP_E_SPECIAL_ENTRY',
      names: 'fifo',
    },
    {
      title: 'a file that a later entry treats as a folder',
      build: withTarEntry({ name: 'Install-Patch.ps1/inner', data: PAYLOAD }),
      code: 'CLP_E_DUPLICATE_ENTRY',
      names: 'Install-Patch.ps1/inner',
    },
    {
      title: 'the same name twice',
      build: withTarEntry({ name: 'Install-Patch.ps1', data: Buffer.from('rm -rf /') }),
      code: 'CLP_E_DUPLICATE_ENTRY',
      names: 'Install-Patch.ps1',
    },
    {
      title: 'more entries than the limit',
      build: tarGz([...validTarEntries(), ...[1, 2, 3].map((i) => ({ name: `extra-${i}`, data: PAYLOAD }))]),
      limits: { maxEntries: 4 },
      code: 'CLP_E_TOO_MANY_ENTRIES',
      names: 'patch.clp',
    },
    {
      title: '10,001 entries against the default limit of 10,000',
      build: tarGz([
        ...validTarEntries(),
        ...Array.from({ length: 9_998 }, (_, i) => ({ name: `f${i}`, data: Buffer.from('x') })),
      ]),
      code: 'CLP_E_TOO_MANY_ENTRIES',
      names: 'patch.clp',
    },
    {
      title: 'an entry larger than the per-entry limit',
      build: withTarEntry({ name: 'big.bin', data: Buffer.alloc(5000, 1) }),
      limits: { maxEntrySize: 4000 },
      code: 'CLP_E_TOO_LARGE',
      names: 'big.bin',
    },
    {
      title: 'a base-256 size field claiming 1 EiB',
      build: async () =>
        gzipSync(
          withBase256Size(
            await buildTar([...validTarEntries(), { name: 'huge', data: PAYLOAD }]),
            'huge',
            1n << 60n,
          ),
        ),
      code: 'CLP_E_TOO_LARGE',
      names: 'huge',
    },
    {
      title: 'a gzip bomb (4 MiB of zeros)',
      build: withTarEntry({ name: 'zeros.bin', data: ZEROS }),
      code: 'CLP_E_ZIP_BOMB',
      names: 'patch.clp',
    },
    {
      title: 'no PKGINFO.meta',
      build: tarGz([{ name: 'Install-Patch.ps1', data: INSTALL_SCRIPT }]),
      code: 'CLP_E_MISSING_PKGINFO',
      names: 'PKGINFO.meta',
    },
    {
      title: 'a historic PKGINFO.meta with no [Package] section',
      build: tarGz(validTarEntries('[Patch]\nName=CLP1250101\n')),
      code: 'CLP_E_PKGINFO_INVALID',
      names: '[Package]',
    },
    {
      title: 'a historic patch with a bad name',
      build: tarGz(validTarEntries(iniMeta('Patch-2025'))),
      code: 'CLP_E_BAD_NAME',
      names: 'Patch-2025',
    },
    {
      title: 'a historic patch with no install script',
      build: tarGz([
        { name: 'PKGINFO.meta', data: Buffer.from(iniMeta()) },
        { name: 'Remove-Patch.ps1', data: INSTALL_SCRIPT },
      ]),
      code: 'CLP_E_EMPTY_PATCH',
      names: 'CLP1250101',
    },
    {
      title: 'a tar.gz cut off in the middle',
      build: async () => {
        const whole = await buildTarGz([
          ...validTarEntries(),
          { name: 'noise.bin', data: Buffer.from(sha256('x').repeat(200)) },
        ]);
        return whole.subarray(0, Math.floor(whole.length * 0.6));
      },
      code: 'CLP_E_TRUNCATED',
      names: 'patch.clp',
    },
    {
      title: 'a gzip stream that holds no tar',
      build: () => gzipSync(Buffer.from('just some text, no tar headers at all\n'.repeat(30))),
      code: 'CLP_E_NOT_AN_ARCHIVE',
      names: 'patch.clp',
    },
  ];

  for (const c of cases) exercised.add(c.code);
  it.each(cases)('$title → $code', async (c) => {
    await expectRefusedOnOpen(c);
  });
});

describe('extracting against a signed manifest', () => {
  exercised.add('CLP_E_HASH_MISMATCH').add('CLP_E_SIZE_MISMATCH');
  async function openValid(): Promise<{
    archive: Awaited<ReturnType<typeof openPatch>>;
    digests: Map<string, EntryDigest>;
  }> {
    const archive = await openPatch(await place(buildZip(validZipEntries())));
    return { archive, digests: await archive.hashEntries() };
  }

  it('refuses an entry whose sha256 differs from the manifest → CLP_E_HASH_MISMATCH', async () => {
    const { archive, digests } = await openValid();
    try {
      const expected = new Map(digests);
      expected.set(PAYLOAD_NAME, { sha256: sha256('something else'), size: PAYLOAD.length });
      const error = await caught(archive.extractTo(outDir(), { expected }));
      expect(error).toMatchObject({ code: 'CLP_E_HASH_MISMATCH' });
      expect(error.message).toContain(PAYLOAD_NAME);
      expect(existsSync(join(outDir(), ...PAYLOAD_NAME.split('/')))).toBe(false);
    } finally {
      await archive.close();
    }
    expect(await strays()).toEqual([]);
  });

  it('refuses an entry whose size differs from the manifest → CLP_E_SIZE_MISMATCH', async () => {
    const { archive, digests } = await openValid();
    try {
      const expected = new Map(digests);
      expected.set(PAYLOAD_NAME, { sha256: sha256(PAYLOAD), size: PAYLOAD.length + 1 });
      const error = await caught(archive.extractTo(outDir(), { expected }));
      expect(error).toMatchObject({ code: 'CLP_E_SIZE_MISMATCH' });
      expect(error.message).toContain(PAYLOAD_NAME);
      expect(existsSync(join(outDir(), ...PAYLOAD_NAME.split('/')))).toBe(false);
    } finally {
      await archive.close();
    }
    expect(await strays()).toEqual([]);
  });

  it('refuses an entry the manifest does not list → CLP_E_HASH_MISMATCH', async () => {
    const { archive, digests } = await openValid();
    try {
      const expected = new Map(digests);
      expected.delete(PAYLOAD_NAME);
      const error = await caught(archive.extractTo(outDir(), { expected }));
      expect(error).toMatchObject({ code: 'CLP_E_HASH_MISMATCH' });
      expect(error.message).toContain(PAYLOAD_NAME);
      expect(existsSync(join(outDir(), ...PAYLOAD_NAME.split('/')))).toBe(false);
    } finally {
      await archive.close();
    }
    expect(await strays()).toEqual([]);
  });

  it('refuses a tampered historic tar.gz entry → CLP_E_HASH_MISMATCH', async () => {
    const archive = await openPatch(await place(await buildTarGz(validTarEntries())));
    try {
      const expected = new Map(await archive.hashEntries());
      expected.set('Install-Patch.ps1', { sha256: sha256('the signed script'), size: INSTALL_SCRIPT.length });
      const error = await caught(archive.extractTo(outDir(), { expected }));
      expect(error).toMatchObject({ code: 'CLP_E_HASH_MISMATCH' });
      expect(error.message).toContain('Install-Patch.ps1');
      expect(existsSync(join(outDir(), 'Install-Patch.ps1'))).toBe(false);
    } finally {
      await archive.close();
    }
    expect(await strays()).toEqual([]);
  });
});

describe('archives that bend the format but are fine (controls for the suite above)', () => {
  async function roundTrip(bytes: Buffer, expectedFiles: Record<string, Buffer>): Promise<void> {
    const archive = await openPatch(await place(bytes));
    try {
      const digests = await archive.hashEntries();
      for (const [name, data] of Object.entries(expectedFiles)) {
        expect(digests.get(name)).toEqual({ sha256: sha256(data), size: data.length });
      }
      await archive.extractTo(outDir(), { expected: digests });
      for (const [name, data] of Object.entries(expectedFiles)) {
        expect(await readFile(join(outDir(), ...name.split('/')))).toEqual(data);
      }
    } finally {
      await archive.close();
    }
    expect(await strays()).toEqual([]);
  }

  it('3,000 entries each 500 folders deep open in a few seconds (name checks are not quadratic)', async () => {
    const deep = 'd/'.repeat(500);
    const entries = Array.from({ length: 3_000 }, (_, i) => ({
      name: `${deep}f${i}`,
      data: Buffer.alloc(0),
      method: STORE,
    }));
    const file = await place(buildZip([...validZipEntries(), ...entries]));
    const started = performance.now();
    const archive = await openPatch(file);
    const ms = performance.now() - started;
    await archive.close();
    expect(archive.entries).toHaveLength(3_002);
    expect(ms, `openPatch took ${Math.round(ms)} ms`).toBeLessThan(5_000);
  });

  it('a plain zip opens, hashes and extracts', async () => {
    await roundTrip(buildZip(validZipEntries()), {
      [PAYLOAD_NAME]: PAYLOAD,
      'PKGINFO.meta': Buffer.from(xmlMeta()),
    });
  });

  it('a zip with data descriptors and an archive comment of garbage', async () => {
    const entries = validZipEntries().map((e) => ({ ...e, dataDescriptor: true }));
    await roundTrip(buildZip(entries, { comment: Buffer.from([0, 1, 2, 0x50, 0x4b, 5, 6, 0xff]) }), {
      [PAYLOAD_NAME]: PAYLOAD,
    });
  });

  it('a zip made on another system (no unix mode) reads its files as 0644', async () => {
    const entries = validZipEntries().map((e) => ({ ...e, externalAttributes: 0 }));
    const archive = await openPatch(await place(buildZip(entries)));
    try {
      expect(archive.entries.find((e) => e.name === PAYLOAD_NAME)?.mode).toBe(0o644);
    } finally {
      await archive.close();
    }
  });

  it('a historic tar.gz with ./ names opens, hashes and extracts', async () => {
    const entries = validTarEntries().map((e) => ({ ...e, name: `./${e.name}` }));
    await roundTrip(await buildTarGz([{ name: './', type: 'directory' }, ...entries]), {
      'Install-Patch.ps1': INSTALL_SCRIPT,
    });
  });

  it("a local header whose name says '../evil' cannot steer where the central directory's entry lands", async () => {
    const bytes = buildZip([
      ...validZipEntries(),
      { name: 'payload/honest', localName: '../../../evil', data: PAYLOAD },
    ]);
    const file = await place(bytes);
    try {
      const archive = await openPatch(file);
      try {
        await archive.extractTo(outDir());
        expect(await readFile(join(outDir(), 'payload', 'honest'))).toEqual(PAYLOAD);
      } finally {
        await archive.close();
      }
    } catch (error) {
      // Refusing the mismatch outright is just as good, as long as it is a coded refusal.
      expect(isClpError(error), `${error}`).toBe(true);
    }
    expect(await strays()).toEqual([]);
  });

  it('a historic tar.gz entry with setuid and sticky bits is not extracted with them', async () => {
    const archive = await openPatch(
      await place(await buildTarGz([...validTarEntries(), { name: 'suid', data: PAYLOAD, mode: 0o7777 }])),
    );
    try {
      await archive.extractTo(outDir());
      expect((await stat(join(outDir(), 'suid'))).mode & 0o7022).toBe(0);
    } finally {
      await archive.close();
    }
  });

  it('a regular-file mode with setuid bits is not extracted setuid', async () => {
    const bytes = buildZip([
      ...validZipEntries(),
      { name: 'payload/suid', data: PAYLOAD, mode: S_IFREG | 0o4755 },
    ]);
    const archive = await openPatch(await place(bytes));
    try {
      await archive.extractTo(outDir());
      expect((await stat(join(outDir(), 'payload', 'suid'))).mode & 0o7000).toBe(0);
    } finally {
      await archive.close();
    }
  });

  it('extracting where a file already exists fails without overwriting or deleting that file', async () => {
    const archive = await openPatch(await place(buildZip(validZipEntries())));
    try {
      const target = join(outDir(), ...PAYLOAD_NAME.split('/'));
      await mkdir(join(outDir(), 'payload'), { recursive: true });
      await writeFile(target, 'already here\n');
      await caught(archive.extractTo(outDir()));
      expect(await readFile(target, 'utf8')).toBe('already here\n');
    } finally {
      await archive.close();
    }
    expect(await strays()).toEqual([]);
  });
});

/** The classic exponential entity document. */
function billionLaughs(): string {
  const defs = ['<!ENTITY lol "lol">'];
  for (let i = 1; i <= 9; i++) defs.push(`<!ENTITY lol${i} "${`&lol${i === 1 ? '' : i - 1};`.repeat(10)}">`);
  return `<?xml version="1.0"?>\n<!DOCTYPE Package [\n${defs.join('\n')}\n]>\n<Package><Name>CLP1251123</Name><Description>&lol9;</Description></Package>\n`;
}

describe('the suite itself', () => {
  it('notices a file that lands beside the extraction folder or in the sandbox', async () => {
    await mkdir(outDir(), { recursive: true });
    await writeFile(join(outDir(), 'fine'), 'x');
    expect(await strays()).toEqual([]);
    await writeFile(join(sandbox, 'x', 'evil'), 'x');
    await writeFile(join(sandbox, 'abs-evil'), 'x');
    expect((await strays()).sort()).toEqual(['abs-evil', join('x', 'evil')]);
  });

  it('has a crafted archive for every format error code an archive can cause', () => {
    const missing = FORMAT_ERROR_CODES.filter(
      (code) => !NOT_FROM_AN_ARCHIVE.has(code) && !exercised.has(code),
    );
    expect(missing).toEqual([]);
  });
});
