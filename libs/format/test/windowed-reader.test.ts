/** The archive reader behind yauzl: small reads answered from one window, exact bytes, short at the end. */
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { WindowedFileReader } from '../src/windowed-reader.ts';

let dir: string;
let file: string;
// 3 MiB of a pattern whose every position is recognisable.
const content = Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 7 + (i >> 11)) & 0xff));

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clp-window-'));
  file = join(dir, 'archive');
  await writeFile(file, content);
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function readAt(reader: WindowedFileReader, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  return new Promise((resolve, reject) =>
    reader.read(buffer, 0, length, position, (error, n) =>
      error ? reject(error) : resolve(buffer.subarray(0, n)),
    ),
  );
}

it('answers reads inside, across and beyond its window with the bytes of the file', async () => {
  const fd = openSync(file, 'r');
  const reader = new WindowedFileReader(fd, content.length);
  try {
    for (const [position, length] of [
      [0, 46],
      [46, 100],
      [1024 * 1024 - 10, 46], // across the end of the first window
      [5, 2 * 1024 * 1024], // larger than a window
      [content.length - 30, 46], // short at the end of the file
      [content.length + 10, 4], // past the end
    ] as const) {
      const got = await readAt(reader, position, length);
      expect(got.equals(content.subarray(position, position + length))).toBe(true);
    }
  } finally {
    closeSync(fd);
  }
});

it('streams a range without closing the descriptor', async () => {
  const fd = openSync(file, 'r');
  const reader = new WindowedFileReader(fd, content.length);
  const stream = reader._readStreamForRange(1000, 200_000);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  expect(Buffer.concat(chunks).equals(content.subarray(1000, 200_000))).toBe(true);
  expect((await readAt(reader, 0, 4)).equals(content.subarray(0, 4))).toBe(true);
  await new Promise<void>((resolve, reject) => reader.close((e) => (e ? reject(e) : resolve())));
});
