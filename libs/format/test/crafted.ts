/**
 * Builders for hand-made archives, valid and hostile. The zip writer works at byte level so a
 * test can make any header lie (sizes, CRC, flags, methods, modes, counts); the tar.gz builder
 * uses tar-stream, which writes whatever type, name and link it is given.
 */
import { createHash } from 'node:crypto';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';

export const STORE = 0;
export const DEFLATE = 8;

/** Unix file types, as they sit in the top half of a zip entry's external attributes. */
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;

/** External attributes of a zip entry made on unix with this st_mode. */
export function unixAttributes(mode: number): number {
  return (mode << 16) >>> 0;
}

export interface ZipEntrySpec {
  /** The name in both headers (a Buffer to write bytes that are not valid UTF-8 or hold NUL). */
  name: string | Buffer;
  /** Uncompressed content. */
  data?: Buffer;
  /** Compression: STORE, DEFLATE, or any other method number to claim (its data is then stored). */
  method?: number;
  /** st_mode; default 0o100644. Ignored when `externalAttributes` is given. */
  mode?: number;
  /** The "made by" host: 3 = unix (default), 0 = MS-DOS, 19 = macOS. */
  madeBy?: number;
  externalAttributes?: number;
  /** General purpose flags; bit 0 = encrypted, bit 3 = data descriptor, bit 11 = UTF-8. */
  flags?: number;
  /** Write sizes and CRC in a data descriptor after the data (sets bit 3, zeros in the local header). */
  dataDescriptor?: boolean;
  /** Lies, written in place of the true values in both headers. */
  crc?: number;
  compressedSize?: number;
  uncompressedSize?: number;
  /** Replaces the compressed bytes (the headers still describe `data` unless told otherwise). */
  rawData?: Buffer;
  /** A different name in the local header only. */
  localName?: string | Buffer;
  /** Extra fields of the central directory record (see zip64Extra, unicodePathExtra). */
  extra?: Buffer;
  /**
   * Writes no local header or data: the central record points at the local header of the
   * entry at this index instead, with its sizes and CRC (overlapping entries, as in
   * Fifield's zip bombs).
   */
  overlapWith?: number;
}

export interface ZipOptions {
  /** Archive comment bytes at the end of the EOCD record. */
  comment?: Buffer;
  /** Comment length to claim in the EOCD (default: the true length). */
  commentLength?: number;
  /** Entry count to claim in the EOCD (default: the true count). */
  entryCount?: number;
  /** Central directory offset to claim in the EOCD. */
  centralOffset?: number;
  /** Bytes prepended before the first local header (offsets are shifted to match). */
  prefix?: Buffer;
}

interface Written {
  spec: ZipEntrySpec;
  name: Buffer;
  offset: number;
  crc: number;
  compressedSize: number;
  uncompressedSize: number;
  method: number;
  flags: number;
  externalAttributes: number;
  extra: Buffer;
  madeBy: number;
}

const DOS_TIME = (12 << 11) | (0 << 5) | 0; // 12:00:00
const DOS_DATE = ((2025 - 1980) << 9) | (11 << 5) | 23; // 2025-11-23

function bytes(name: string | Buffer): Buffer {
  return typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
}

/** Builds a zip archive in memory from entry specs, honouring every lie the specs ask for. */
export function buildZip(entries: readonly ZipEntrySpec[], options: ZipOptions = {}): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  const push = (b: Buffer): void => {
    parts.push(b);
    offset += b.length;
  };
  if (options.prefix) push(options.prefix);

  const written: Written[] = [];
  for (const spec of entries) {
    if (spec.overlapWith !== undefined) {
      const target = written[spec.overlapWith];
      if (!target) throw new Error(`overlapWith ${spec.overlapWith}: no such earlier entry`);
      written.push({ ...target, spec, name: bytes(spec.name) });
      continue;
    }
    const data = spec.data ?? Buffer.alloc(0);
    const method = spec.method ?? DEFLATE;
    const body = spec.rawData ?? (method === DEFLATE ? deflateRawSync(data) : data);
    const flags = (spec.flags ?? 0x0800) | (spec.dataDescriptor ? 0x0008 : 0);
    const crc = spec.crc ?? crc32(data);
    const compressedSize = spec.compressedSize ?? body.length;
    const uncompressedSize = spec.uncompressedSize ?? data.length;
    const name = bytes(spec.name);
    const localName = spec.localName === undefined ? name : bytes(spec.localName);
    const externalAttributes = spec.externalAttributes ?? unixAttributes(spec.mode ?? S_IFREG | 0o644);
    const entryOffset = offset;

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(spec.dataDescriptor ? 0 : crc, 14);
    local.writeUInt32LE(spec.dataDescriptor ? 0 : compressedSize, 18);
    local.writeUInt32LE(spec.dataDescriptor ? 0 : uncompressedSize, 22);
    local.writeUInt16LE(localName.length, 26);
    local.writeUInt16LE(0, 28);
    push(local);
    push(localName);
    push(body);
    if (spec.dataDescriptor) {
      const dd = Buffer.alloc(16);
      dd.writeUInt32LE(0x08074b50, 0);
      dd.writeUInt32LE(crc, 4);
      dd.writeUInt32LE(compressedSize, 8);
      dd.writeUInt32LE(uncompressedSize, 12);
      push(dd);
    }
    written.push({
      spec,
      name,
      offset: entryOffset,
      crc,
      compressedSize,
      uncompressedSize,
      method,
      flags,
      externalAttributes,
      extra: spec.extra ?? Buffer.alloc(0),
      madeBy: spec.madeBy ?? 3,
    });
  }

  const centralStart = offset;
  for (const w of written) {
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((w.madeBy << 8) | 20, 4); // made by: host, spec 2.0
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(w.flags, 8);
    central.writeUInt16LE(w.method, 10);
    central.writeUInt16LE(DOS_TIME, 12);
    central.writeUInt16LE(DOS_DATE, 14);
    central.writeUInt32LE(w.crc, 16);
    central.writeUInt32LE(w.compressedSize, 20);
    central.writeUInt32LE(w.uncompressedSize, 24);
    central.writeUInt16LE(w.name.length, 28);
    central.writeUInt16LE(w.extra.length, 30);
    central.writeUInt16LE(0, 32);
    central.writeUInt16LE(0, 34);
    central.writeUInt16LE(0, 36);
    central.writeUInt32LE(w.externalAttributes, 38);
    central.writeUInt32LE(w.offset, 42);
    push(central);
    push(w.name);
    push(w.extra);
  }
  const centralSize = offset - centralStart;

  const comment = options.comment ?? Buffer.alloc(0);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(0, 4);
  eocd.writeUInt16LE(0, 6);
  eocd.writeUInt16LE(options.entryCount ?? written.length, 8);
  eocd.writeUInt16LE(options.entryCount ?? written.length, 10);
  eocd.writeUInt32LE(centralSize, 12);
  eocd.writeUInt32LE(options.centralOffset ?? centralStart, 16);
  eocd.writeUInt16LE(options.commentLength ?? comment.length, 20);
  push(eocd);
  push(comment);
  return Buffer.concat(parts);
}

/** One extra field: id, length, data. */
export function extraField(id: number, data: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16LE(id, 0);
  head.writeUInt16LE(data.length, 2);
  return Buffer.concat([head, data]);
}

/**
 * The zip64 extended information field with 64-bit sizes; pair it with uncompressedSize and
 * compressedSize of 0xffffffff in the spec so a reader looks here.
 */
export function zip64Extra(uncompressedSize: bigint, compressedSize: bigint): Buffer {
  const data = Buffer.alloc(16);
  data.writeBigUInt64LE(uncompressedSize, 0);
  data.writeBigUInt64LE(compressedSize, 8);
  return extraField(0x0001, data);
}

/** The Info-ZIP Unicode Path field: readers that honour it take `name` instead of the header's name. */
export function unicodePathExtra(headerName: string, name: string): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(1, 0);
  head.writeUInt32LE(crc32(Buffer.from(headerName, 'utf8')), 1);
  return extraField(0x7075, Buffer.concat([head, Buffer.from(name, 'utf8')]));
}

export type TarEntryType =
  | 'file'
  | 'directory'
  | 'symlink'
  | 'link'
  | 'character-device'
  | 'block-device'
  | 'fifo';

export interface TarEntrySpec {
  name: string;
  type?: TarEntryType;
  data?: Buffer;
  mode?: number;
  linkname?: string;
  /** PAX extended header records; a `path` here overrides the header's name for PAX readers. */
  pax?: Record<string, string>;
}

/** Builds a gzip-compressed tar (the historic .clp layout) from entry specs. */
export async function buildTarGz(entries: readonly TarEntrySpec[]): Promise<Buffer> {
  return gzipSync(await buildTar(entries));
}

/** Builds an uncompressed tar from entry specs. */
export async function buildTar(entries: readonly TarEntrySpec[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    p.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    p.on('end', () => resolve());
    p.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      mtime: new Date(Date.UTC(2025, 10, 23, 12)),
      uid: 0,
      gid: 0,
      ...(e.linkname === undefined ? {} : { linkname: e.linkname }),
      ...(e.pax === undefined ? {} : { pax: e.pax }),
      ...(type === 'character-device' || type === 'block-device' ? { devmajor: 1, devminor: 3 } : {}),
    };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      p.entry(header, type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0), cb);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * Rewrites the size field of the tar header named `name` in GNU base-256 form (first byte 0x80,
 * then the size big-endian), recomputing the header checksum: a size no octal field can hold.
 */
export function withBase256Size(tar: Buffer, name: string, size: bigint): Buffer {
  const out = Buffer.from(tar);
  for (let off = 0; off + 512 <= out.length; ) {
    const header = out.subarray(off, off + 512);
    const headerName = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const dataSize = Number.parseInt(
      header.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0',
      8,
    );
    if (headerName === name) {
      header.fill(0, 124, 136);
      header[124] = 0x80;
      header.writeBigUInt64BE(size, 128);
      header.fill(0x20, 148, 156);
      let sum = 0;
      for (const b of header) sum += b;
      header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      return out;
    }
    off += 512 + Math.ceil(dataSize / 512) * 512;
  }
  throw new Error(`no tar header named ${name}`);
}

/** Deterministic bytes: zeros with one pseudo-random byte every `every` bytes (deflates about every/3 : 1). */
export function sparseNoise(length: number, every: number, seed = 1): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i += every) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export const PAYLOAD = Buffer.from('Port 22\nPermitRootLogin no\n');
export const PAYLOAD_NAME = 'payload/clp-demo.conf';

/** A valid XML PKGINFO.meta adding one file from `source`. */
export function xmlMeta(
  options: { name?: string; source?: string; actions?: string; extra?: string } = {},
): string {
  const source = options.source ?? PAYLOAD_NAME;
  const actions =
    options.actions ??
    `    <File action="add" path="/etc/clp-demo.conf" source="${source}" sha256="${sha256(PAYLOAD)}" mode="0644" owner="root" group="root"/>`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<Package>
  <Name>${options.name ?? 'CLP1251123'}</Name>
  <Version>1</Version>
  <Architecture>any</Architecture>
  <Description>crafted test patch</Description>${options.extra ?? ''}
  <Actions>
${actions}
  </Actions>
</Package>
`;
}

/** The historic INI PKGINFO.meta of a script-only patch. */
export function iniMeta(name = 'CLP1250101'): string {
  return `[Package]\nName=${name}\nVersion=1\nArchitecture=any\nDescription=historic\n`;
}

export const INSTALL_SCRIPT = Buffer.from('Write-Host "installing"\n');

/** The entries of a small valid declarative patch, ready for buildZip. */
export function validZipEntries(meta: string = xmlMeta()): ZipEntrySpec[] {
  return [
    { name: 'PKGINFO.meta', data: Buffer.from(meta) },
    { name: 'payload/', data: Buffer.alloc(0), method: STORE, mode: S_IFDIR | 0o755 },
    { name: PAYLOAD_NAME, data: PAYLOAD },
  ];
}

/** The entries of a small valid historic patch, ready for buildTarGz. */
export function validTarEntries(meta: string = iniMeta()): TarEntrySpec[] {
  return [
    { name: 'PKGINFO.meta', data: Buffer.from(meta) },
    { name: 'Install-Patch.ps1', data: INSTALL_SCRIPT },
    { name: 'Remove-Patch.ps1', data: Buffer.from('Write-Host "removing"\n') },
  ];
}
