/**
 * New files are staged straight from the patch beside their targets: small ones written once
 * checked, large ones streamed through the check; a large batch is made durable by one syncfs per
 * filesystem (through `sync -f`), a small one by an fsync of each file. A fake `sync` first on
 * PATH records its calls, or fails the way an old `sync` or a failing disk would.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openPatch, writePatch } from '@clp/format';
import type { KeyPair } from '@clp/trust';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { installPatch, listInstalled } from '../src/index.ts';
import { SYNCFS_MIN_FILES } from '../src/stage-direct.ts';
import { buildPatch, fileAction, makeRoot, snapshotRoot, tempDir, trustedKey } from './engine-fixtures.ts';

const quiet = { warn: () => {} };
const realPath = process.env.PATH;

async function failureOf(p: Promise<unknown>): Promise<Error & { code: string }> {
  try {
    await p;
  } catch (error) {
    return error as Error & { code: string };
  }
  throw new Error('expected a failure');
}

/** Puts a `sync` first on PATH that runs `body` (sh); its calls are appended to the returned log. */
async function fakeSync(body: string): Promise<string> {
  const dir = await tempDir('fake-sync');
  const log = join(dir, 'calls');
  await writeFile(log, '');
  await writeFile(join(dir, 'sync'), `#!/bin/sh\necho "$*" >> '${log}'\n${body}\n`);
  await chmod(join(dir, 'sync'), 0o755);
  process.env.PATH = `${dir}:${realPath}`;
  return log;
}

async function calls(log: string): Promise<string[]> {
  return (await readFile(log, 'utf8')).split('\n').filter((l) => l !== '');
}

/** Every name under dir that a staging step leaves (.clp-TX-N-NAME), recursively. */
async function stagedLeftovers(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.name.startsWith('.clp-')) found.push(join(e.parentPath, e.name));
  return found;
}

/** The patch with one entry's bytes replaced (same size), its signature kept. */
async function tampered(signed: string, entry: string, out: string): Promise<string> {
  const original = await openPatch(signed);
  const entries: Array<{ name: string; data: Buffer }> = [];
  try {
    for (const e of original.entries) {
      const data = await original.readEntry(e.name, 64 << 20);
      if (e.name === entry) data[0] = (data[0] as number) ^ 0xff;
      entries.push({ name: e.name, data });
    }
  } finally {
    await original.close();
  }
  await writePatch(out, entries);
  return out;
}

describe('staging straight from the patch', () => {
  let out: string;
  beforeAll(async () => {
    out = await tempDir('staging');
  });
  afterEach(() => {
    process.env.PATH = realPath;
  });

  const batchSize = SYNCFS_MIN_FILES + 6;
  function batch(name: string): Parameters<typeof buildPatch>[1] {
    const entries: Record<string, string> = {};
    const actions = [];
    for (let i = 0; i < batchSize; i++) {
      const content = `file ${i} of ${name}\n`.repeat(i + 1);
      entries[`payload/f${i}`] = content;
      actions.push(
        fileAction('add', `/opt/batch/d${i % 3}/f${i}`, `payload/f${i}`, content, {
          mode: i % 2 === 0 ? 0o640 : 0o755,
          owner: 'web',
          group: 'daemon',
        }),
      );
    }
    return { name, actions, entries };
  }

  async function setup(): Promise<{ root: string; key: KeyPair }> {
    const root = await makeRoot();
    return { root, key: await trustedKey(root) };
  }

  it('a large batch lands with its content, modes and owners after one syncfs of its filesystem', async () => {
    const { root, key } = await setup();
    const log = await fakeSync('exec /bin/sync "$@"');
    await installPatch(await buildPatch(out, batch('CLP1260201'), key), { root, ...quiet });
    expect(await calls(log)).toEqual(['-f /dev/stdin']);
    for (const i of [0, 1, batchSize - 1]) {
      const path = join(root, `opt/batch/d${i % 3}/f${i}`);
      expect(await readFile(path, 'utf8')).toBe(`file ${i} of CLP1260201\n`.repeat(i + 1));
      const st = await lstat(path);
      expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([i % 2 === 0 ? 0o640 : 0o755, 33, 1]);
    }
    expect(await stagedLeftovers(root)).toEqual([]);
  });

  it('a small batch fsyncs each file and runs no sync', async () => {
    const { root, key } = await setup();
    const log = await fakeSync('exec /bin/sync "$@"');
    const patch = {
      name: 'CLP1260202',
      actions: [fileAction('add', '/opt/small/a.conf', 'payload/a.conf', 'a\n')],
      entries: { 'payload/a.conf': 'a\n' },
    };
    await installPatch(await buildPatch(out, patch, key), { root, ...quiet });
    expect(await calls(log)).toEqual([]);
    expect(await readFile(join(root, 'opt/small/a.conf'), 'utf8')).toBe('a\n');
  });

  it('where sync has no -f, each staged file is fsynced instead and the install succeeds', async () => {
    const { root, key } = await setup();
    const log = await fakeSync(`echo "sync: invalid option -- 'f'" >&2; exit 1`);
    await installPatch(await buildPatch(out, batch('CLP1260203'), key), { root, ...quiet });
    expect(await calls(log)).toHaveLength(1);
    expect((await listInstalled({ root })).map((p) => p.name)).toEqual(['CLP1260203']);
    expect(await stagedLeftovers(root)).toEqual([]);
  });

  it('a failing syncfs is CLP_E_APPLY_FAILED, and the root is as before', async () => {
    const { root, key } = await setup();
    const before = await snapshotRoot(root);
    await fakeSync(`echo "sync: error syncing '/dev/stdin': Input/output error" >&2; exit 1`);
    const error = await failureOf(
      installPatch(await buildPatch(out, batch('CLP1260204'), key), { root, ...quiet }),
    );
    expect(error.code).toBe('CLP_E_APPLY_FAILED');
    expect(error.message).toMatch(/Input\/output error/);
    expect(await snapshotRoot(root)).toEqual(before);
    expect(await listInstalled({ root })).toEqual([]);
  });

  it('an entry of a large batch changed after signing is CLP_E_HASH_MISMATCH, and no staged file is left', async () => {
    const { root, key } = await setup();
    const before = await snapshotRoot(root);
    const signed = await buildPatch(out, batch('CLP1260205'), key);
    const file = await tampered(signed, `payload/f${batchSize - 2}`, join(out, 'tampered-batch.clp'));
    const error = await failureOf(installPatch(file, { root, ...quiet }));
    expect(error.code).toBe('CLP_E_HASH_MISMATCH');
    expect(error.message).toContain(`payload/f${batchSize - 2}`);
    expect(await snapshotRoot(root)).toEqual(before);
    expect(await stagedLeftovers(root)).toEqual([]);
  });

  it('a file larger than a read streams to its target; changed after signing it is CLP_E_HASH_MISMATCH and leaves nothing', async () => {
    const { root, key } = await setup();
    await mkdir(join(root, 'opt/big'), { recursive: true });
    const before = await snapshotRoot(root);
    const content = randomBytes(3 * 1024 * 1024 + 17);
    const source = join(out, 'big.bin');
    await writeFile(source, content);
    const patch = {
      name: 'CLP1260206',
      actions: [
        {
          type: 'file' as const,
          action: 'add' as const,
          path: '/opt/big/big.bin',
          source: 'payload/big.bin',
          sha256: createHash('sha256').update(content).digest('hex'),
        },
      ],
      entries: { 'payload/big.bin': { file: source } },
    };
    const signed = await buildPatch(out, patch, key);
    const file = await tampered(signed, 'payload/big.bin', join(out, 'tampered-big.clp'));
    const error = await failureOf(installPatch(file, { root, ...quiet }));
    expect(error.code).toBe('CLP_E_HASH_MISMATCH');
    expect(await snapshotRoot(root)).toEqual(before);
    expect(await stagedLeftovers(root)).toEqual([]);

    await installPatch(signed, { root, ...quiet });
    expect((await readFile(join(root, 'opt/big/big.bin'))).equals(content)).toBe(true);
  });
});
