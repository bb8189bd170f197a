import { mkdir, open, unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { blobChunks, blobs, type Database } from '@clp/db';
import { and, eq, sql } from 'drizzle-orm';
import { type BlobStore, isSha256 } from './blob-store.ts';

/** 1 MiB: a Range costs at most two partial pieces, and a 512 MiB release is 512 rows. */
export const CHUNK_BYTES = 1024 * 1024;

/**
 * Release files in the database (CLP_BLOB_STORE=postgres): every replica on every host reaches
 * them without a shared filesystem. A blob is a `blobs` row and its `blob_chunks`, written in one
 * transaction (so a blob is whole or absent) before its release row commits. Writing and reading
 * hold one chunk at a time, so memory stays bounded whatever the size.
 */
export class PostgresBlobStore implements BlobStore {
  readonly kind = 'postgres' as const;
  readonly #db: Database;
  readonly tempDir: string;
  readonly #chunkBytes: number;

  constructor(db: Database, tempDir: string, chunkBytes = CHUNK_BYTES) {
    this.#db = db;
    this.tempDir = tempDir;
    this.#chunkBytes = chunkBytes;
  }

  async init(): Promise<void> {
    await mkdir(this.tempDir, { recursive: true });
  }

  #check(sha256: string): void {
    if (!isSha256(sha256)) throw new Error(`not a sha256: ${JSON.stringify(sha256.slice(0, 80))}`);
  }

  async put(sha256: string, tempFile: string): Promise<void> {
    this.#check(sha256);
    const file = await open(tempFile, 'r');
    try {
      const { size } = await file.stat();
      const chunkSize = this.#chunkBytes;
      await this.#db.transaction(async (tx) => {
        // A concurrent upload of the same bytes waits here for the first one's commit, then stores nothing.
        const [mine] = await tx
          .insert(blobs)
          .values({ sha256, size, chunkSize })
          .onConflictDoNothing()
          .returning({ sha256: blobs.sha256 });
        if (!mine) return;
        const buffer = Buffer.allocUnsafe(chunkSize);
        for (let index = 0, offset = 0; offset < size; index++, offset += chunkSize) {
          const { bytesRead } = await file.read(buffer, 0, Math.min(chunkSize, size - offset), offset);
          await tx
            .insert(blobChunks)
            .values({ sha256, index, data: Buffer.from(buffer.subarray(0, bytesRead)) });
        }
      });
    } finally {
      await file.close();
    }
    await unlink(tempFile);
  }

  async size(sha256: string): Promise<number | undefined> {
    this.#check(sha256);
    const [row] = await this.#db.select({ size: blobs.size }).from(blobs).where(eq(blobs.sha256, sha256));
    return row?.size;
  }

  read(sha256: string, range?: { start: number; end: number }): Readable {
    this.#check(sha256);
    const db = this.#db;
    async function* pieces(): AsyncGenerator<Buffer> {
      const [blob] = await db.select().from(blobs).where(eq(blobs.sha256, sha256));
      if (!blob) throw new Error(`blob ${sha256} is not in the database`);
      const start = range?.start ?? 0;
      const end = range?.end ?? blob.size - 1;
      for (let index = Math.floor(start / blob.chunkSize); index * blob.chunkSize <= end; index++) {
        const chunkStart = index * blob.chunkSize;
        const from = Math.max(start, chunkStart) - chunkStart;
        const length = Math.min(end, chunkStart + blob.chunkSize - 1) - chunkStart - from + 1;
        // Only the bytes the range needs leave the database.
        const [piece] = await db
          .select({
            data: sql<Buffer>`substring(${blobChunks.data} from ${from + 1}::int for ${length}::int)`,
          })
          .from(blobChunks)
          .where(and(eq(blobChunks.sha256, sha256), eq(blobChunks.index, index)));
        if (!piece) throw new Error(`blob ${sha256} lacks its piece ${index}`);
        yield toBuffer(piece.data);
      }
    }
    return Readable.from(pieces(), { objectMode: false, highWaterMark: this.#chunkBytes });
  }

  async remove(sha256: string): Promise<void> {
    this.#check(sha256);
    await this.#db.delete(blobs).where(eq(blobs.sha256, sha256));
  }
}

/** Raw SQL results bypass the column's type mapping: PGlite answers a Uint8Array, pg a Buffer. */
function toBuffer(data: unknown): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === 'string' && data.startsWith('\\x')) return Buffer.from(data.slice(2), 'hex');
  throw new Error('a blob piece came back in an unexpected form');
}
