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
 * Passes an entry's bytes through while counting, hashing and checking them: never more bytes
 * than declared (a lying size is how a zip bomb gets past limits), the CRC-32 at the end, and
 * the expected sha256 when there is one. The digest is available after 'end'.
 */
export class EntryGuard extends Transform {
  readonly #options: GuardOptions;
  readonly #hash = createHash('sha256');
  #size = 0;
  #crc = 0;
  #digest: EntryDigest | undefined;

  constructor(options: GuardOptions) {
    super();
    this.#options = options;
  }

  get digest(): EntryDigest {
    if (!this.#digest) throw new Error('EntryGuard.digest read before the stream ended');
    return this.#digest;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#size += chunk.length;
    if (this.#size > this.#options.declaredSize) {
      done(
        this.#error('CLP_E_ZIP_BOMB', `holds more bytes than the ${this.#options.declaredSize} it declares`),
      );
      return;
    }
    this.#hash.update(chunk);
    if (this.#options.declaredCrc32 !== undefined) this.#crc = crc32(chunk, this.#crc);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const o = this.#options;
    if (this.#size !== o.declaredSize) {
      done(this.#error('CLP_E_TRUNCATED', `holds ${this.#size} bytes but declares ${o.declaredSize}`));
      return;
    }
    if (o.declaredCrc32 !== undefined && this.#crc >>> 0 !== o.declaredCrc32 >>> 0) {
      done(this.#error('CLP_E_CORRUPT_ENTRY', 'fails its CRC-32 check: the archive is damaged'));
      return;
    }
    const digest = { sha256: this.#hash.digest('hex'), size: this.#size };
    if (o.expected) {
      if (digest.size !== o.expected.size) {
        done(
          this.#error(
            'CLP_E_SIZE_MISMATCH',
            `is ${digest.size} bytes, but the signed manifest says ${o.expected.size}`,
            { actual: digest.size, expected: o.expected.size },
          ),
        );
        return;
      }
      if (digest.sha256 !== o.expected.sha256) {
        done(
          this.#error(
            'CLP_E_HASH_MISMATCH',
            `has sha256 ${digest.sha256}, but the signed manifest says ${o.expected.sha256}`,
            {
              actual: digest.sha256,
              expected: o.expected.sha256,
            },
          ),
        );
        return;
      }
    }
    this.#digest = digest;
    done();
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
