/**
 * Bar R2: ENOSPC while staging, a read-only target, permission denied at the rename, a failing
 * script: each ends rolled back, with an error naming the cause, and nothing half-written.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyPair } from '@clp/trust';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installPatch, listInstalled, uninstallPatch } from '../src/index.ts';
import {
  buildPatch,
  fileAction,
  makeRoot,
  sha256,
  snapshotRoot,
  tempDir,
  trustedKey,
} from './engine-fixtures.ts';

function run(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

/** Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN). */
function canMount(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = spawnSync(
    'sh',
    [
      '-c',
      'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; s=$?; rmdir "$d"; exit $s',
    ],
    { stdio: 'ignore' },
  );
  return probe.status === 0;
}

function canChattr(dir: string): boolean {
  if (process.getuid?.() !== 0) return false;
  const f = join(dir, '.chattr-probe');
  spawnSync('touch', [f]);
  const ok = run('chattr', ['+i', f]);
  run('chattr', ['-i', f]);
  spawnSync('rm', ['-f', f]);
  return ok;
}

interface Failure extends Error {
  code: string;
}

async function failureOf(p: Promise<unknown>): Promise<Failure> {
  try {
    await p;
  } catch (error) {
    return error as Failure;
  }
  throw new Error('expected a failure');
}

const mounts: string[] = [];
const immutable: string[] = [];
const mountOk = canMount();
if (!mountOk) console.warn('skipped: needs root/mount (ENOSPC and read-only tmpfs fault tests)');

describe('faults end rolled back with a clear error', () => {
  let out: string;
  beforeAll(async () => {
    out = await tempDir('faults');
  });
  afterAll(() => {
    for (const f of immutable) run('chattr', ['-i', f]);
    for (const m of mounts.reverse()) run('umount', [m]);
  });

  async function setup(): Promise<{ root: string; key: KeyPair }> {
    const root = await makeRoot({ 'etc/app.conf': { content: 'v1\n', mode: 0o640, uid: 33, gid: 33 } });
    return { root, key: await trustedKey(root) };
  }

  const replaceConf = fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'v2\n', {
    expectSha256: sha256('v1\n'),
  });

  it.skipIf(!mountOk)('ENOSPC while staging on a full filesystem (256 KiB tmpfs)', async () => {
    const { root, key } = await setup();
    const small = join(root, 'opt/small');
    await mkdir(small, { recursive: true });
    expect(run('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small])).toBe(true);
    mounts.push(small);
    await writeFile(join(small, 'existing.txt'), 'existing\n');
    const big = 'x'.repeat(600 * 1024);
    const file = await buildPatch(
      out,
      {
        name: 'CLP1251201',
        actions: [
          replaceConf,
          fileAction('replace', '/opt/small/existing.txt', 'payload/existing.txt', 'changed\n'),
          fileAction('add', '/opt/small/big.bin', 'payload/big.bin', big),
        ],
        entries: { 'payload/app.conf': 'v2\n', 'payload/existing.txt': 'changed\n', 'payload/big.bin': big },
      },
      key,
    );
    const before = await snapshotRoot(root);
    const error = await failureOf(installPatch(file, { root }));
    expect(error.code).toBe('CLP_E_NO_SPACE');
    expect(error.message).toMatch(/no space left on device/i);
    expect(await snapshotRoot(root)).toEqual(before);
    expect((await readdir(small)).sort()).toEqual(['existing.txt']);
    expect(await listInstalled({ root })).toEqual([]);
  });

  it.skipIf(!mountOk)(
    'targets on another filesystem than the state: copies instead of links, still exact',
    async () => {
      const { root, key } = await setup();
      const other = join(root, 'opt/other');
      await mkdir(other, { recursive: true });
      expect(run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', other])).toBe(true);
      mounts.push(other);
      await writeFile(join(other, 'keep.conf'), 'keep v1\n', { mode: 0o600 });
      const before = await snapshotRoot(root);
      const file = await buildPatch(
        out,
        {
          name: 'CLP1251205',
          actions: [
            fileAction('replace', '/opt/other/keep.conf', 'payload/keep.conf', 'keep v2\n', {
              owner: 'daemon',
            }),
            fileAction('add', '/opt/other/sub/new.conf', 'payload/new.conf', 'new\n'),
          ],
          entries: { 'payload/keep.conf': 'keep v2\n', 'payload/new.conf': 'new\n' },
        },
        key,
      );
      await installPatch(file, { root });
      expect((await snapshotRoot(root))['opt/other/keep.conf']).toBe(`file ${sha256('keep v2\n')} 600 1:0`);
      await uninstallPatch('CLP1251205', { root });
      expect(await snapshotRoot(root)).toEqual(before);
    },
  );

  it.skipIf(!mountOk)('a read-only target filesystem', async () => {
    const { root, key } = await setup();
    const ro = join(root, 'srv/ro');
    await mkdir(ro, { recursive: true });
    expect(run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', ro])).toBe(true);
    mounts.push(ro);
    await writeFile(join(ro, 'site.conf'), 'site v1\n');
    expect(run('mount', ['-o', 'remount,ro', ro])).toBe(true);
    const file = await buildPatch(
      out,
      {
        name: 'CLP1251202',
        actions: [replaceConf, fileAction('replace', '/srv/ro/site.conf', 'payload/site.conf', 'site v2\n')],
        entries: { 'payload/app.conf': 'v2\n', 'payload/site.conf': 'site v2\n' },
      },
      key,
    );
    const before = await snapshotRoot(root);
    const error = await failureOf(installPatch(file, { root }));
    expect(error.code).toBe('CLP_E_READ_ONLY');
    expect(error.message).toMatch(/read-only file system/i);
    expect(error.message).toMatch(/srv\/ro/);
    expect(await snapshotRoot(root)).toEqual(before);
  });

  it.skipIf(!canChattr(tmpdirForProbe()))(
    'permission denied at the rename, after other files of the batch were replaced',
    async () => {
      const { root, key } = await setup();
      await writeFile(join(root, 'etc/locked.conf'), 'locked v1\n');
      // The folder stays writable (staging works); the file itself cannot be replaced.
      expect(run('chattr', ['+i', join(root, 'etc/locked.conf')])).toBe(true);
      immutable.push(join(root, 'etc/locked.conf'));
      const file = await buildPatch(
        out,
        {
          name: 'CLP1251203',
          actions: [
            replaceConf,
            fileAction('add', '/etc/new.d/added.conf', 'payload/added.conf', 'added\n'),
            fileAction('replace', '/etc/locked.conf', 'payload/locked.conf', 'locked v2\n'),
          ],
          entries: {
            'payload/app.conf': 'v2\n',
            'payload/added.conf': 'added\n',
            'payload/locked.conf': 'locked v2\n',
          },
        },
        key,
      );
      const before = await snapshotRoot(root);
      const error = await failureOf(installPatch(file, { root }));
      expect(error.code).toBe('CLP_E_PERMISSION');
      expect(error.message).toMatch(/operation not permitted/i);
      expect(await snapshotRoot(root)).toEqual(before);
      run('chattr', ['-i', join(root, 'etc/locked.conf')]);
    },
  );

  it('a failing pre script: nothing else ran, nothing changed', async () => {
    const { root, key } = await setup();
    const file = await buildPatch(
      out,
      {
        name: 'CLP1251204',
        actions: [{ type: 'script', when: 'pre', path: 'pre.sh' }, replaceConf],
        entries: {
          'payload/app.conf': 'v2\n',
          'pre.sh': '#!/bin/sh\necho "cannot stop the service" >&2\nexit 1\n',
        },
      },
      key,
    );
    const before = await snapshotRoot(root);
    const error = await failureOf(installPatch(file, { root, runScriptsOnHost: true }));
    expect(error.code).toBe('CLP_E_SCRIPT_FAILED');
    expect(error.message).toMatch(/pre\.sh exited with status 1.*\n.*cannot stop the service/s);
    expect(await snapshotRoot(root)).toEqual(before);
  });
});

function tmpdirForProbe(): string {
  return process.env.TMPDIR ?? '/tmp';
}
