import { close, read, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import yauzl from 'yauzl';

/** One read of the archive takes this much: the central directory of a 1,000-entry patch fits. */
const WINDOW_BYTES = 1024 * 1024;
const STREAM_CHUNK = 64 * 1024;

/**
 * yauzl reads each central directory record (and each local header) in two small reads; through
 * the thread pool that is two round trips per entry before anything is checked. This reader reads
 * a window of the archive at a time, synchronously (nothing else runs while a patch is opened),
 * and answers the small reads from it. Entry data still streams straight from the file.
 */
export class WindowedFileReader extends yauzl.RandomAccessReader {
  readonly #fd: number;
  readonly #size: number;
  readonly #window = Buffer.allocUnsafe(WINDOW_BYTES);
  #windowStart = 0;
  #windowLength = 0;

  constructor(fd: number, size: number) {
    super();
    this.#fd = fd;
    this.#size = size;
  }

  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | null, bytesRead?: number) => void,
  ): void {
    let bytesRead: number;
    try {
      bytesRead = this.#readAt(buffer, offset, length, position);
    } catch (error) {
      process.nextTick(callback, error as Error);
      return;
    }
    process.nextTick(callback, null, bytesRead);
  }

  /** Positional reads of [start, end); never closes the descriptor (yauzl closes it, once, through close). */
  override _readStreamForRange(start: number, end: number): Readable {
    const fd = this.#fd;
    let position = start;
    return new Readable({
      highWaterMark: STREAM_CHUNK,
      read(size) {
        const length = Math.min(size, end - position);
        if (length <= 0) {
          this.push(null);
          return;
        }
        const buffer = Buffer.allocUnsafe(length);
        read(fd, buffer, 0, length, position, (error, n) => {
          if (error) this.destroy(error);
          // A short file ends the stream early; yauzl's byte count names it.
          else if (n === 0) this.push(null);
          else {
            position += n;
            this.push(n < length ? buffer.subarray(0, n) : buffer);
          }
        });
      },
    });
  }

  override close(callback: (err: Error | null) => void): void {
    close(this.#fd, (error) => callback(error ?? null));
  }

  /** Copies what the file holds at [position, position + length) into buffer; fewer bytes at its end. */
  #readAt(buffer: Buffer, offset: number, length: number, position: number): number {
    if (length > WINDOW_BYTES) return readFully(this.#fd, buffer, offset, length, position);
    const inWindow =
      position >= this.#windowStart && position + length <= this.#windowStart + this.#windowLength;
    if (!inWindow) {
      const want = Math.max(0, Math.min(WINDOW_BYTES, this.#size - position));
      this.#windowStart = position;
      this.#windowLength = 0;
      this.#windowLength = readFully(this.#fd, this.#window, 0, want, position);
    }
    const from = position - this.#windowStart;
    const available = Math.max(0, Math.min(length, this.#windowLength - from));
    this.#window.copy(buffer, offset, from, from + available);
    return available;
  }
}

function readFully(fd: number, buffer: Buffer, offset: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buffer, offset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
