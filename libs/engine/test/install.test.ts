import { lstat, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openPatch, writePatch } from '@clp/format';
import type { KeyPair } from '@clp/trust';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  engineStatus,
  explainPatch,
  getPatch,
  installPatch,
  listInstalled,
  readHistory,
  uninstallPatch,
} from '../src/index.ts';
import {
  buildPatch,
  fileAction,
  makeRoot,
  sha256,
  snapshotRoot,
  tempDir,
  trustedKey,
} from './engine-fixtures.ts';

const quiet = { warn: () => {} };

interface Failure extends Error {
  code: string;
  details: { refusals: Array<{ code: string; rule: string }> };
}

async function failureOf(p: Promise<unknown>): Promise<Failure> {
  try {
    await p;
  } catch (error) {
    return error as Failure;
  }
  throw new Error('expected a failure');
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (error) {
    return (error as { code?: string }).code ?? `uncoded: ${(error as Error).message}`;
  }
  return 'no error';
}

describe('install and uninstall of files', () => {
  let out: string;
  beforeAll(async () => {
    out = await tempDir('patches');
  });

  async function setup(): Promise<{ root: string; key: KeyPair }> {
    const root = await makeRoot({
      'etc/app.conf': { content: 'old config\n', mode: 0o640, uid: 33, gid: 1 },
      'etc/obsolete.conf': { content: 'obsolete\n', mode: 0o600, uid: 1, gid: 33 },
    });
    return { root, key: await trustedKey(root) };
  }

  function mainPatch(name = 'CLP1251123') {
    return {
      name,
      actions: [
        fileAction('add', '/opt/app/new/tool.conf', 'payload/tool.conf', 'tool\n', {
          mode: 0o755,
          owner: 'web',
          group: 'daemon',
        }),
        fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'new config\n', {
          expectSha256: sha256('old config\n'),
        }),
        { type: 'file' as const, action: 'remove' as const, path: '/etc/obsolete.conf' },
      ],
      entries: { 'payload/tool.conf': 'tool\n', 'payload/app.conf': 'new config\n' },
    };
  }

  it('adds, replaces and removes files, keeping mode and owner; uninstall puts back content, mode and owner', async () => {
    const { root, key } = await setup();
    const before = await snapshotRoot(root);
    const file = await buildPatch(out, mainPatch(), key);
    const result = await installPatch(file, { root, ...quiet });
    expect(result.name).toBe('CLP1251123');
    expect(result.signedBy).toBe(key.keyId);
    expect(await readFile(join(root, 'opt/app/new/tool.conf'), 'utf8')).toBe('tool\n');
    const tool = await stat(join(root, 'opt/app/new/tool.conf'));
    expect([tool.mode & 0o7777, tool.uid, tool.gid]).toEqual([0o755, 33, 1]);
    expect(await readFile(join(root, 'etc/app.conf'), 'utf8')).toBe('new config\n');
    // A replace without mode/owner keeps the old file's.
    const conf = await stat(join(root, 'etc/app.conf'));
    expect([conf.mode & 0o7777, conf.uid, conf.gid]).toEqual([0o640, 33, 1]);
    await expect(lstat(join(root, 'etc/obsolete.conf'))).rejects.toThrow(/ENOENT/);
    // No staged or restore leftovers next to targets.
    const after = await snapshotRoot(root);
    expect(Object.keys(after).filter((p) => p.includes('.clp-'))).toEqual([]);

    expect((await listInstalled({ root })).map((p) => p.name)).toEqual(['CLP1251123']);
    expect((await getPatch('CLP1251123', { root })).steps).toHaveLength(3);
    expect((await engineStatus({ root })).installed).toHaveLength(1);
    const log = await readFile(join(root, 'var/log/CLP.log'), 'utf8');
    expect(log).toMatch(/install: replace \/etc\/app.conf/);

    await uninstallPatch('CLP1251123', { root });
    expect(await snapshotRoot(root)).toEqual(before);
    expect(await listInstalled({ root })).toEqual([]);
    expect((await readHistory({ root })).map((h) => `${h.op}:${h.result}`)).toEqual([
      'install:installed',
      'uninstall:uninstalled',
    ]);
  });

  it('a failed precondition stops the patch before anything is written', async () => {
    const { root, key } = await setup();
    await writeFile(join(root, 'etc/app.conf'), 'locally edited\n');
    const before = await snapshotRoot(root, []);
    const file = await buildPatch(out, mainPatch('CLP1251124'), key);
    const error = await failureOf(installPatch(file, { root, ...quiet }));
    expect(error.code).toBe('CLP_E_PRECONDITION');
    expect(error.message).toMatch(/\/etc\/app.conf has sha256 [0-9a-f]{64}, the patch expects/);
    // The lock file stays once made: removing it would let two commands lock two files of one name.
    const after = await snapshotRoot(root, [
      'var/log/CLP.log',
      'var/lib/clp/history.jsonl',
      'var/lib/clp/lock',
    ]);
    expect(after).toEqual(
      Object.fromEntries(
        Object.entries(before).filter(([k]) => k !== 'var/log/CLP.log' && k !== 'var/lib/clp/lock'),
      ),
    );
  });

  it('uninstall reports drift and refuses without --force; --force restores', async () => {
    const { root, key } = await setup();
    const before = await snapshotRoot(root);
    const file = await buildPatch(out, mainPatch('CLP1251125'), key);
    await installPatch(file, { root, ...quiet });
    await writeFile(join(root, 'etc/app.conf'), 'edited after the patch\n');
    const error = await failureOf(uninstallPatch('CLP1251125', { root }));
    expect(error.code).toBe('CLP_E_DRIFT');
    expect(error.message).toMatch(/\/etc\/app.conf has sha256/);
    expect((await listInstalled({ root })).map((p) => p.name)).toEqual(['CLP1251125']);
    const forced = await uninstallPatch('CLP1251125', { root, force: true });
    expect(forced.drift).toHaveLength(1);
    expect(await snapshotRoot(root)).toEqual(before);
  });

  it.each([
    ['same size, other bytes', 'NEW CONFIG\n', ['CLP_E_HASH_MISMATCH']],
    ['another size', 'new config, longer\n', ['CLP_E_MANIFEST_MISMATCH']],
  ])(
    'a payload changed after signing (%s) is refused and nothing is written',
    async (_what, tampered, codes) => {
      const { root, key } = await setup();
      const before = await snapshotRoot(root);
      const signed = await buildPatch(out, mainPatch('CLP1251129'), key);
      const original = await openPatch(signed);
      const entries: Array<{ name: string; data: Buffer }> = [];
      try {
        for (const e of original.entries) {
          const data =
            e.name === 'payload/app.conf' ? Buffer.from(tampered) : await original.readEntry(e.name, 1 << 20);
          entries.push({ name: e.name, data });
        }
      } finally {
        await original.close();
      }
      const file = join(out, `tampered-${tampered.length}.clp`);
      await writePatch(file, entries);
      const error = await failureOf(installPatch(file, { root, ...quiet }));
      expect(codes).toContain(error.code);
      expect(error.message).toContain('payload/app.conf');
      expect(await snapshotRoot(root)).toEqual(before);
      expect(await listInstalled({ root })).toEqual([]);
      expect(await readdir(join(root, 'var/lib/clp/tx')).catch(() => [])).toEqual([]);
    },
  );

  it('refuses an untrusted patch, and installs it with insecure (loudly)', async () => {
    const { root } = await setup();
    const stranger = (await import('@clp/trust')).generateKeyPair('stranger');
    const file = await buildPatch(out, mainPatch('CLP1251126'), stranger);
    expect(await codeOf(installPatch(file, { root, ...quiet }))).toBe('CLP_E_UNKNOWN_KEY');
    const unsigned = await buildPatch(out, mainPatch('CLP1251126'), null);
    expect(await codeOf(installPatch(unsigned, { root, ...quiet }))).toBe('CLP_E_UNSIGNED');
    expect((await readHistory({ root })).map((h) => `${h.result}:${h.code}`)).toEqual([
      'refused:CLP_E_UNKNOWN_KEY',
      'refused:CLP_E_UNSIGNED',
    ]);
    const warnings: string[] = [];
    const result = await installPatch(unsigned, { root, insecure: true, warn: (m) => warnings.push(m) });
    expect(result.signedBy).toBeNull();
    expect(warnings.join('\n')).toMatch(/WITHOUT checking its signature/);
    expect(await readFile(join(root, 'var/log/CLP.log'), 'utf8')).toMatch(/WITHOUT checking its signature/);
  });

  it('refuses another architecture and a downgrade within a series', async () => {
    const { root, key } = await setup();
    const other = await buildPatch(out, { ...mainPatch('CLP1251127'), architecture: 'aarch64' }, key);
    expect(await codeOf(installPatch(other, { root, architecture: 'x86_64', ...quiet }))).toBe(
      'CLP_E_ARCHITECTURE',
    );
    const newer = await buildPatch(
      out,
      {
        name: 'CLP2251201',
        series: 'app',
        actions: [fileAction('add', '/etc/a', 'a', 'a\n')],
        entries: { a: 'a\n' },
      },
      key,
    );
    const older = await buildPatch(
      out,
      {
        name: 'CLP1251201',
        series: 'app',
        actions: [fileAction('add', '/etc/b', 'b', 'b\n')],
        entries: { b: 'b\n' },
      },
      key,
    );
    await installPatch(newer, { root, ...quiet });
    expect(await codeOf(installPatch(older, { root, ...quiet }))).toBe('CLP_E_DOWNGRADE');
    // Older patches of a series stay until the newer ones on top of them are gone.
    await installPatch(
      await buildPatch(
        out,
        {
          name: 'CLP3251201',
          series: 'app',
          actions: [fileAction('add', '/etc/c', 'c', 'c\n')],
          entries: { c: 'c\n' },
        },
        key,
      ),
      { root, ...quiet },
    );
    expect(await codeOf(uninstallPatch('CLP2251201', { root }))).toBe('CLP_E_DOWNGRADE');
    await uninstallPatch('CLP3251201', { root });
    const again = await failureOf(installPatch(newer, { root, ...quiet }));
    expect(again.code).toBe('CLP_E_NOT_APPLICABLE');
    expect(again.details.refusals.map((r) => r.code)).toEqual([
      'CLP_E_ALREADY_INSTALLED',
      'CLP_E_PRECONDITION',
    ]);
  });

  it('explain lists every refusal at once and changes nothing', async () => {
    const { root } = await setup();
    await writeFile(join(root, 'etc/app.conf'), 'locally edited\n');
    const stranger = (await import('@clp/trust')).generateKeyPair('stranger');
    const file = await buildPatch(
      out,
      { ...mainPatch('CLP1251128'), architecture: 'aarch64', systems: [{ os: 'vincent' }] },
      stranger,
    );
    const before = await snapshotRoot(root, ['var/lib/clp/lock']);
    const explanation = await explainPatch(file, { root, architecture: 'x86_64' });
    expect(explanation.applies).toBe(false);
    // Only the lock file is new: it stays once made (see lock.ts).
    expect(explanation.refusals.map((r) => r.rule).sort()).toEqual([
      'architecture',
      'os',
      'precondition',
      'trust',
    ]);
    expect(await snapshotRoot(root, ['var/lib/clp/lock'])).toEqual(before);
  });
  it('a root used under another path later (prepared with --root, then moved) still uninstalls', async () => {
    const { root, key } = await setup();
    const before = await snapshotRoot(root);
    await installPatch(await buildPatch(out, mainPatch('CLP1251129'), key), { root, ...quiet });
    const moved = `${root}-moved`;
    await rename(root, moved);
    expect((await listInstalled({ root: moved })).map((p) => p.name)).toEqual(['CLP1251129']);
    await uninstallPatch('CLP1251129', { root: moved });
    expect(await snapshotRoot(moved)).toEqual(before);
  });
});
