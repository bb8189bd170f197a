import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { FormatError } from './errors.ts';

export interface EntryDigest {
  sha256: string;
  size: number;
}

export interface GuardOptions {
  archive: string;
  entry: string;
  declaredSize: number;
  /** Zip entries carry a CRC-32; tar entries do not. */
  declaredCrc32?: number;
  /** When set, the bytes must match this digest (e.g. the signed manifest's). */
  expected?: EntryDigest;
}

/**
 * Counts, hashes and checks an entry's bytes as they come: never more bytes than declared (a
 * lying size is how a zip bomb gets past limits), the CRC-32 at the end, and the expected sha256
 * when there is one. update() and finish() throw the coded error.
 */
export class EntryCheck {
  readonly #options: GuardOptions;
  readonly #hash = createHash('sha256');
  #size = 0;
  #crc = 0;

  constructor(options: GuardOptions) {
    this.#options = options;
  }

  update(chunk: Buffer): void {
    this.#size += chunk.length;
    if (this.#size > this.#options.declaredSize) {
      throw this.#error(
        'CLP_E_ZIP_BOMB',
        `holds more bytes than the ${this.#options.declaredSize} it declares`,
      );
    }
    this.#hash.update(chunk);
    if (this.#options.declaredCrc32 !== undefined) this.#crc = crc32(chunk, this.#crc);
  }

  /** The digest of everything seen, once it matched what was declared and expected. */
  finish(): EntryDigest {
    const o = this.#options;
    if (this.#size !== o.declaredSize) {
      throw this.#error('CLP_E_TRUNCATED', `holds ${this.#size} bytes but declares ${o.declaredSize}`);
    }
    if (o.declaredCrc32 !== undefined && this.#crc >>> 0 !== o.declaredCrc32 >>> 0) {
      throw this.#error('CLP_E_CORRUPT_ENTRY', 'fails its CRC-32 check: the archive is damaged');
    }
    const digest = { sha256: this.#hash.digest('hex'), size: this.#size };
    if (o.expected) {
      if (digest.size !== o.expected.size) {
        throw this.#error(
          'CLP_E_SIZE_MISMATCH',
          `is ${digest.size} bytes, but the signed manifest says ${o.expected.size}`,
          { actual: digest.size, expected: o.expected.size },
        );
      }
      if (digest.sha256 !== o.expected.sha256) {
        throw this.#error(
          'CLP_E_HASH_MISMATCH',
          `has sha256 ${digest.sha256}, but the signed manifest says ${o.expected.sha256}`,
          { actual: digest.sha256, expected: o.expected.sha256 },
        );
      }
    }
    return digest;
  }

  #error(
    code:
      | 'CLP_E_ZIP_BOMB'
      | 'CLP_E_TRUNCATED'
      | 'CLP_E_CORRUPT_ENTRY'
      | 'CLP_E_SIZE_MISMATCH'
      | 'CLP_E_HASH_MISMATCH',
    why: string,
    extra: Record<string, unknown> = {},
  ): FormatError {
    return new FormatError(code, `${this.#options.archive}: entry ${this.#options.entry} ${why}`, {
      details: { archive: this.#options.archive, entry: this.#options.entry, ...extra },
    });
  }
}

/** Passes an entry's bytes through an EntryCheck; the digest is available after 'end'. */
export class EntryGuard extends Transform {
  readonly #check: EntryCheck;
  #digest: EntryDigest | undefined;

  constructor(options: GuardOptions) {
    super();
    this.#check = new EntryCheck(options);
  }

  get digest(): EntryDigest {
    if (!this.#digest) throw new Error('EntryGuard.digest read before the stream ended');
    return this.#digest;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      this.#check.update(chunk);
    } catch (error) {
      done(error as Error);
      return;
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    try {
      this.#digest = this.#check.finish();
    } catch (error) {
      done(error as Error);
      return;
    }
    done();
  }
}
