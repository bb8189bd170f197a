/**
 * A crafted root never leads clpctl (running as root) outside it: links in its state, log and
 * trust store, folders on the way to a patched file that became links, patched paths that became
 * links, FIFOs, sockets, devices or folders, and --root values that name no folder. Each scenario
 * runs the built clpctl against a fixture root with a signed patch, and checks the exit code, the
 * error code, the tree and the journal, and that a sentinel folder outside the root is exactly as
 * it was: content, mode, owner, mtime and ctime (any write, chmod or chown moves ctime).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildPatch,
  fileAction,
  makeRoot,
  sha256,
  snapshotRoot,
  tempDir,
  trustedKey,
} from './engine-fixtures.ts';
import { CLPCTL, ensureBundle, type Run } from './run-clpctl.ts';

const asRoot = process.getuid?.() === 0;
if (!asRoot)
  console.warn('skipped: the hostile-root scenarios need root (they chown files and make device nodes)');

/** Runs clpctl with a short timeout, so that a command that would hang (on a FIFO) fails instead. */
function run(args: string[], env: Record<string, string> = {}, timeout = 30_000): Run {
  const r = spawnSync(process.execPath, [CLPCTL, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** A folder outside every root, with a root-only secret file and a folder of files in it. */
async function makeSentinel(): Promise<string> {
  const dir = await tempDir('outside');
  await writeFile(join(dir, 'secret'), 'root only\n');
  await chmod(join(dir, 'secret'), 0o600);
  await mkdir(join(dir, 'victim'));
  await writeFile(join(dir, 'victim/keep.txt'), 'keep me\n');
  await writeFile(join(dir, 'index.json'), '{"version":1,"installed":[],"failed":[]}\n');
  return dir;
}

/** Everything a write, a chmod, a chown or a delete would change, for each path under dir. */
async function sentinelState(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    const path = rel === '' ? dir : join(dir, rel);
    const st = await lstat(path);
    const id = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} m${st.mtimeMs} c${st.ctimeMs}`;
    if (st.isDirectory()) {
      out[rel || '.'] = `dir ${id} [${(await readdir(path)).sort().join(',')}]`;
      for (const e of await readdir(path)) await walk(rel === '' ? e : `${rel}/${e}`);
    } else if (st.isSymbolicLink()) out[rel] = `link ${await readlink(path)}`;
    else
      out[rel] = `file ${createHash('sha256')
        .update(await readFile(path))
        .digest('hex')} ${id}`;
  };
  await walk('');
  return out;
}

function codeOf(r: Run): string | undefined {
  return /error (CLP_E_[A-Z_]+):/.exec(r.stderr)?.[1];
}

/** No stack trace, one coded line naming `path`. */
function expectRefusal(r: Run, exit: number, code: string, path?: string): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(codeOf(r), r.stderr).toBe(code);
  expect(r.status, r.stderr).toBe(exit);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  if (path !== undefined) expect(r.stderr).toContain(path);
}

const STATE_EXCLUDE = ['var/lib/clp', 'var/log/CLP.log'];

describe.skipIf(!asRoot)('a crafted root never leads clpctl outside it', () => {
  let work: string;
  let outside: string;
  let before: Record<string, string>;

  beforeAll(async () => {
    ensureBundle();
    work = await tempDir('hostile');
  });

  async function withSentinel(): Promise<void> {
    outside = await makeSentinel();
    before = await sentinelState(outside);
  }

  async function expectSentinelUntouched(): Promise<void> {
    expect(await sentinelState(outside)).toEqual(before);
  }

  /** A root with one installed patch that replaced /etc/app.conf and added /etc/cron.d/job. */
  async function installedRoot(name = 'CLP1251201'): Promise<{ root: string; patch: string }> {
    const root = await makeRoot({
      'etc/app.conf': { content: 'config v1\n', mode: 0o640, uid: 33, gid: 33 },
      'etc/cron.d/other': 'other job\n',
    });
    const key = await trustedKey(root);
    const patch = await buildPatch(
      join(work, name),
      {
        name,
        actions: [
          fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'config v2\n', {
            expectSha256: sha256('config v1\n'),
            mode: 0o600,
          }),
          fileAction('add', '/etc/cron.d/job', 'payload/job', '* * * * * root true\n'),
        ],
        entries: { 'payload/app.conf': 'config v2\n', 'payload/job': '* * * * * root true\n' },
      },
      key,
    );
    const r = run(['--root', root, '--run-scripts-on-host', 'install', patch]);
    expect(r.status, r.stderr).toBe(0);
    return { root, patch };
  }

  async function freshPatch(root: string, name: string): Promise<string> {
    const key = await trustedKey(root, `k${name}`);
    return buildPatch(
      join(work, name),
      {
        name,
        actions: [fileAction('add', '/etc/new.conf', 'payload/new.conf', 'new\n')],
        entries: { 'payload/new.conf': 'new\n' },
      },
      key,
    );
  }

  describe('links at the engine own paths', () => {
    it('ROOT/var/lib/clp/tx as a link to a folder outside: every command refuses, nothing there is deleted', async () => {
      await withSentinel();
      const root = await makeRoot();
      await symlink(outside, join(root, 'var/lib/clp/tx'));
      for (const command of [['status'], ['recover'], ['list']]) {
        expectRefusal(run(['--root', root, ...command]), 12, 'CLP_E_LINK_REFUSED', 'var/lib/clp/tx');
      }
      await expectSentinelUntouched();
    });

    it('ROOT/var/log/CLP.log as a link to a file outside: install refuses before anything, nothing is appended', async () => {
      await withSentinel();
      const root = await makeRoot();
      const patch = await freshPatch(root, 'CLP1251202');
      await symlink(join(outside, 'secret'), join(root, 'var/log/CLP.log'));
      const tree = await snapshotRoot(root, ['var/lib/clp']);
      expectRefusal(
        run(['--root', root, '--run-scripts-on-host', 'install', patch]),
        12,
        'CLP_E_LINK_REFUSED',
        'var/log/CLP.log',
      );
      expect(await snapshotRoot(root, ['var/lib/clp'])).toEqual(tree);
      await expectSentinelUntouched();
    });

    it('the lock, the index, the journal and the history as links to files outside are refused, none is read or written', async () => {
      for (const name of ['lock', 'index.json', 'journal', 'history.jsonl']) {
        await withSentinel();
        const root = await makeRoot();
        const patch = await freshPatch(root, 'CLP1251203');
        await symlink(
          join(outside, name === 'index.json' ? 'index.json' : 'secret'),
          join(root, 'var/lib/clp', name),
        );
        const tree = await snapshotRoot(root, STATE_EXCLUDE);
        expectRefusal(
          run(['--root', root, '--run-scripts-on-host', 'install', patch]),
          12,
          'CLP_E_LINK_REFUSED',
          `var/lib/clp/${name}`,
        );
        expectRefusal(run(['--root', root, 'list']), 12, 'CLP_E_LINK_REFUSED', `var/lib/clp/${name}`);
        expect(await snapshotRoot(root, STATE_EXCLUDE), name).toEqual(tree);
        await expectSentinelUntouched();
      }
    });

    it('ROOT/var/lib/clp/patches as a link to a folder outside: install refuses before its transaction, nothing lands there', async () => {
      await withSentinel();
      const root = await makeRoot();
      const patch = await freshPatch(root, 'CLP1251204');
      await symlink(join(outside, 'victim'), join(root, 'var/lib/clp/patches'));
      const tree = await snapshotRoot(root, STATE_EXCLUDE);
      expectRefusal(
        run(['--root', root, '--run-scripts-on-host', 'install', patch]),
        12,
        'CLP_E_LINK_REFUSED',
        'var/lib/clp/patches',
      );
      expect(await snapshotRoot(root, STATE_EXCLUDE)).toEqual(tree);
      await expect(readFile(join(root, 'var/lib/clp/journal'))).rejects.toMatchObject({ code: 'ENOENT' });
      await expectSentinelUntouched();
    });

    it('a link in the folder of an installed patch (its backups) is refused by uninstall, nothing is restored from it', async () => {
      await withSentinel();
      const { root } = await installedRoot('CLP1251205');
      const backup = join(root, 'var/lib/clp/patches/CLP1251205/backup');
      await rename(backup, `${backup}.moved`);
      await symlink(outside, backup);
      const tree = await snapshotRoot(root, STATE_EXCLUDE);
      expectRefusal(
        run(['--root', root, 'uninstall', '--force', 'CLP1251205']),
        12,
        'CLP_E_LINK_REFUSED',
        'patches/CLP1251205/backup',
      );
      expect(await snapshotRoot(root, STATE_EXCLUDE)).toEqual(tree);
      await expectSentinelUntouched();
    });

    it('ROOT/etc/clp/keys.d as a link to a folder of keys outside, or a key file as a link, is not trusted', async () => {
      await withSentinel();
      const root = await makeRoot();
      const keys = join(outside, 'keys');
      const patch = await freshPatch(root, 'CLP1251206');
      await rename(join(root, 'etc/clp/keys.d'), keys);
      await symlink(keys, join(root, 'etc/clp/keys.d'));
      before = await sentinelState(outside);
      expectRefusal(
        run(['--root', root, '--run-scripts-on-host', 'install', patch]),
        12,
        'CLP_E_LINK_REFUSED',
        'etc/clp/keys.d',
      );
      expectRefusal(run(['--root', root, 'status']), 12, 'CLP_E_LINK_REFUSED', 'etc/clp/keys.d');
      await rm(join(root, 'etc/clp/keys.d'));
      await mkdir(join(root, 'etc/clp/keys.d'));
      const [pub] = (await readdir(keys)).filter((n) => n.endsWith('.pub'));
      await symlink(join(keys, pub as string), join(root, 'etc/clp/keys.d', pub as string));
      expectRefusal(
        run(['--root', root, '--run-scripts-on-host', 'install', patch]),
        12,
        'CLP_E_LINK_REFUSED',
        pub,
      );
      expect(JSON.parse(run(['--root', root, '--json', 'list']).stdout)).toEqual([]);
      await expectSentinelUntouched();
    });

    it('ROOT/var as an absolute link out of the root is refused; a link that stays inside the root is followed', async () => {
      await withSentinel();
      const root = await makeRoot();
      await rename(join(root, 'var'), join(outside, 'var'));
      before = await sentinelState(outside);
      await symlink(join(outside, 'var'), join(root, 'var'));
      expectRefusal(run(['--root', root, 'status']), 12, 'CLP_E_LINK_REFUSED', join(root, 'var'));
      await expectSentinelUntouched();
      // The same data moved inside the root, behind a relative link, is the machine's own layout.
      await rm(join(root, 'var'));
      await rename(join(outside, 'var'), join(root, 'data-var'));
      await symlink('data-var', join(root, 'var'));
      const patch = await freshPatch(root, 'CLP1251207');
      expect(run(['--root', root, '--run-scripts-on-host', 'install', patch]).status).toBe(0);
      expect(await readFile(join(root, 'data-var/lib/clp/index.json'), 'utf8')).toContain('CLP1251207');
    });
  });

  describe('folders and files of a patch that changed since it was installed', () => {
    it('uninstall refuses when a folder of a patched file became a link out of the root, also with --force', async () => {
      await withSentinel();
      const { root } = await installedRoot('CLP1251210');
      await rename(join(root, 'etc/cron.d'), join(root, 'etc/cron.d.real'));
      await symlink(join(outside, 'victim'), join(root, 'etc/cron.d'));
      const tree = await snapshotRoot(root, STATE_EXCLUDE);
      for (const force of [[], ['--force']]) {
        const r = run(['--root', root, 'uninstall', ...force, 'CLP1251210']);
        expectRefusal(r, 12, 'CLP_E_LINK_REFUSED', '/etc/cron.d');
        expect(r.stderr).toContain('outside the root');
      }
      expect(await snapshotRoot(root, STATE_EXCLUDE)).toEqual(tree);
      expect(
        JSON.parse(run(['--root', root, '--json', 'list']).stdout).map((p: { name: string }) => p.name),
      ).toEqual(['CLP1251210']);
      await expectSentinelUntouched();
      // With the folder back, uninstall goes through and puts everything back.
      await rm(join(root, 'etc/cron.d'));
      await rename(join(root, 'etc/cron.d.real'), join(root, 'etc/cron.d'));
      expect(run(['--root', root, 'uninstall', 'CLP1251210']).status).toBe(0);
      expect(await readFile(join(root, 'etc/app.conf'), 'utf8')).toBe('config v1\n');
    });

    it('recover refuses to undo through a folder that became a link, keeps the journal, and finishes once the folder is back', async () => {
      await withSentinel();
      const root = await makeRoot({
        'etc/app.conf': { content: 'config v1\n', mode: 0o640, uid: 33, gid: 33 },
        'etc/cron.d/other': 'other\n',
      });
      const key = await trustedKey(root);
      const patch = await buildPatch(
        join(work, 'CLP1251211'),
        {
          name: 'CLP1251211',
          actions: [
            fileAction('replace', '/etc/cron.d/other', 'payload/other', 'other v2\n'),
            fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'config v2\n'),
            { type: 'script', when: 'post', path: 'post.sh' },
          ],
          entries: {
            'payload/other': 'other v2\n',
            'payload/app.conf': 'config v2\n',
            'post.sh': '#!/bin/sh\n',
          },
        },
        key,
      );
      const clean = await snapshotRoot(root, STATE_EXCLUDE);
      // Killed after the file batch (begin, run, done): the files are replaced, the commit is not written.
      const killed = run(['--root', root, '--run-scripts-on-host', 'install', patch], {
        CLP_TEST_KILL_AT_STEP: '3',
      });
      expect(killed.signal).toBe('SIGKILL');
      expect(await readFile(join(root, 'etc/cron.d/other'), 'utf8')).toBe('other v2\n');
      await rename(join(root, 'etc/cron.d'), join(root, 'etc/cron.d.real'));
      await symlink(join(outside, 'victim'), join(root, 'etc/cron.d'));
      const r = run(['--root', root, 'recover']);
      expectRefusal(r, 7, 'CLP_E_RECOVERY_FAILED', '/etc/cron.d');
      expect(r.stderr).toMatch(/symbolic link/);
      expect(await readFile(join(root, 'var/lib/clp/journal'), 'utf8')).toMatch(/"t":"rollback"/);
      await expectSentinelUntouched();
      await rm(join(root, 'etc/cron.d'));
      await rename(join(root, 'etc/cron.d.real'), join(root, 'etc/cron.d'));
      const again = run(['--root', root, '--json', 'recover']);
      expect(again.status, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout).action).toBe('rolled-back');
      expect(await snapshotRoot(root, STATE_EXCLUDE)).toEqual(clean);
    });

    it('a patched file replaced by a link (to a root-only file outside) is refused by uninstall, also with --force, and never read', async () => {
      await withSentinel();
      const { root } = await installedRoot('CLP1251212');
      await rm(join(root, 'etc/app.conf'));
      await symlink(join(outside, 'secret'), join(root, 'etc/app.conf'));
      for (const force of [[], ['--force']]) {
        const r = run(['--root', root, 'uninstall', ...force, 'CLP1251212']);
        expectRefusal(r, 12, 'CLP_E_TARGET_NOT_FILE', '/etc/app.conf');
        expect(r.stderr).toContain('symbolic link');
        expect(r.stderr).not.toContain(sha256('root only\n'));
      }
      expect(await readlink(join(root, 'etc/app.conf'))).toBe(join(outside, 'secret'));
      await expectSentinelUntouched();
    });

    it('a patched file swapped for a link during the install is never backed up as a link, and the rollback changes nothing outside', async () => {
      await withSentinel();
      const root = await makeRoot({ 'etc/app.conf': { content: 'config v1\n', mode: 0o644 } });
      const key = await trustedKey(root);
      // The pre script stands for anyone who swaps the file between the checks and the commit.
      const swap = `#!/bin/sh\nrm "$CLP_ROOT/etc/app.conf"\nln -s ${join(outside, 'secret')} "$CLP_ROOT/etc/app.conf"\n`;
      const patch = await buildPatch(
        join(work, 'CLP1251213'),
        {
          name: 'CLP1251213',
          actions: [
            { type: 'script', when: 'pre', path: 'swap.sh' },
            fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'config v2\n', {
              mode: 0o777,
              owner: 'daemon',
            }),
            { type: 'script', when: 'post', path: 'fail.sh' },
          ],
          entries: { 'payload/app.conf': 'config v2\n', 'swap.sh': swap, 'fail.sh': '#!/bin/sh\nexit 3\n' },
        },
        key,
      );
      const r = run(['--root', root, '--run-scripts-on-host', 'install', patch]);
      expectRefusal(r, 12, 'CLP_E_TARGET_NOT_FILE', '/etc/app.conf');
      expect(await readlink(join(root, 'etc/app.conf'))).toBe(join(outside, 'secret'));
      expect(await readdir(join(root, 'var/lib/clp/tx'))).toEqual([]);
      await expectSentinelUntouched();
    });

    it('a backup that is a dangling link (left by an interrupted backup) does not make recovery fail: the link is put back as it was', async () => {
      await withSentinel();
      const root = await makeRoot({ 'etc/app.conf': 'config v1\n' });
      const key = await trustedKey(root);
      const patch = await buildPatch(
        join(work, 'CLP1251214'),
        {
          name: 'CLP1251214',
          actions: [
            fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'config v2\n', { mode: 0o600 }),
            { type: 'script', when: 'post', path: 'post.sh' },
          ],
          entries: { 'payload/app.conf': 'config v2\n', 'post.sh': '#!/bin/sh\n' },
        },
        key,
      );
      const killed = run(['--root', root, '--run-scripts-on-host', 'install', patch], {
        CLP_TEST_KILL_AT_STEP: '3',
      });
      expect(killed.signal).toBe('SIGKILL');
      const [tx] = await readdir(join(root, 'var/lib/clp/tx'));
      const backup = join(root, 'var/lib/clp/tx', tx as string, 'backup/0');
      await rm(backup);
      await symlink(join(outside, 'gone'), backup);
      const r = run(['--root', root, '--json', 'recover']);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).action).toBe('rolled-back');
      expect(await readlink(join(root, 'etc/app.conf'))).toBe(join(outside, 'gone'));
      await expect(readFile(join(root, 'var/lib/clp/journal'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(run(['--root', root, 'status']).status).toBe(0);
      await expectSentinelUntouched();
    });

    it('a patched file replaced by a link after a crash is replaced by the backup on recover; the link target keeps its mode and owner', async () => {
      await withSentinel();
      const root = await makeRoot({
        'etc/app.conf': { content: 'config v1\n', mode: 0o777, uid: 65534, gid: 65534 },
      });
      const key = await trustedKey(root);
      const patch = await buildPatch(
        join(work, 'CLP1251215'),
        {
          name: 'CLP1251215',
          actions: [
            fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'config v2\n', { mode: 0o600 }),
            { type: 'script', when: 'post', path: 'post.sh' },
          ],
          entries: { 'payload/app.conf': 'config v2\n', 'post.sh': '#!/bin/sh\n' },
        },
        key,
      );
      const clean = await snapshotRoot(root, STATE_EXCLUDE);
      expect(
        run(['--root', root, '--run-scripts-on-host', 'install', patch], { CLP_TEST_KILL_AT_STEP: '3' })
          .signal,
      ).toBe('SIGKILL');
      await rm(join(root, 'etc/app.conf'));
      await symlink(join(outside, 'secret'), join(root, 'etc/app.conf'));
      const r = run(['--root', root, 'recover']);
      expect(r.status, r.stderr).toBe(0);
      expect(await snapshotRoot(root, STATE_EXCLUDE)).toEqual(clean);
      await expectSentinelUntouched();
    });
  });

  describe('odd file types at a patched path', () => {
    async function oddAt(path: string, kind: 'fifo' | 'socket' | 'device' | 'dir'): Promise<() => void> {
      await rm(path, { force: true });
      if (kind === 'fifo') expect(spawnSync('mkfifo', [path]).status).toBe(0);
      if (kind === 'device') expect(spawnSync('mknod', [path, 'c', '1', '3']).status).toBe(0);
      if (kind === 'dir') await mkdir(path);
      if (kind === 'socket') {
        const server = createServer();
        await new Promise<void>((resolve) => server.listen(path, resolve));
        return () => server.close();
      }
      return () => {};
    }

    for (const kind of ['fifo', 'socket', 'device', 'dir'] as const) {
      it(`a ${kind} at a patched path: install and uninstall (also --force) refuse before anything changes, without hanging`, async () => {
        await withSentinel();
        const { root } = await installedRoot(`CLP125122${['fifo', 'socket', 'device', 'dir'].indexOf(kind)}`);
        const name = JSON.parse(run(['--root', root, '--json', 'list']).stdout)[0].name as string;
        const stop = await oddAt(join(root, 'etc/app.conf'), kind);
        try {
          const tree = await snapshotRoot(root, STATE_EXCLUDE);
          for (const force of [[], ['--force']]) {
            const r = run(['--root', root, 'uninstall', ...force, name], {}, 20_000);
            expectRefusal(r, 12, 'CLP_E_TARGET_NOT_FILE', '/etc/app.conf');
          }
          expect(await snapshotRoot(root, STATE_EXCLUDE)).toEqual(tree);
          // A patch that would replace it is refused too.
          const other = await makeRoot();
          const key = await trustedKey(other);
          const stop2 = await oddAt(join(other, 'etc/app.conf'), kind);
          try {
            const patch = await buildPatch(
              join(work, `odd-${kind}`),
              {
                name: 'CLP1251230',
                actions: [fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'x\n')],
                entries: { 'payload/app.conf': 'x\n' },
              },
              key,
            );
            const tree2 = await snapshotRoot(other, STATE_EXCLUDE);
            expectRefusal(
              run(['--root', other, '--run-scripts-on-host', 'install', patch], {}, 20_000),
              12,
              'CLP_E_TARGET_NOT_FILE',
              '/etc/app.conf',
            );
            expect(await snapshotRoot(other, STATE_EXCLUDE)).toEqual(tree2);
          } finally {
            stop2();
          }
        } finally {
          stop();
        }
        await expectSentinelUntouched();
      });
    }
  });

  describe('odd file types at a patched path after a crash', () => {
    for (const kind of ['fifo', 'device', 'dir'] as const) {
      it(`a ${kind} put at a patched path after a kill: recover does not hang: the backup goes back over a FIFO or device, and a folder is named until it is moved away`, async () => {
        await withSentinel();
        const root = await makeRoot({ 'etc/app.conf': 'config v1\n' });
        const key = await trustedKey(root);
        const name = `CLP${5 + ['fifo', 'device', 'dir'].indexOf(kind)}251201`;
        const patch = await buildPatch(
          join(work, `${name}-crash`),
          {
            name,
            actions: [
              fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'config v2\n'),
              { type: 'script', when: 'post', path: 'post.sh' },
            ],
            entries: { 'payload/app.conf': 'config v2\n', 'post.sh': '#!/bin/sh\n' },
          },
          key,
        );
        expect(
          run(['--root', root, '--run-scripts-on-host', 'install', patch], { CLP_TEST_KILL_AT_STEP: '3' })
            .signal,
        ).toBe('SIGKILL');
        const target = join(root, 'etc/app.conf');
        await rm(target);
        if (kind === 'fifo') expect(spawnSync('mkfifo', [target]).status).toBe(0);
        if (kind === 'device') expect(spawnSync('mknod', [target, 'c', '1', '3']).status).toBe(0);
        if (kind === 'dir') await mkdir(target);
        if (kind === 'dir') {
          // A file cannot be renamed over a folder: recover names it and keeps the journal.
          const r = run(['--root', root, 'recover'], {}, 20_000);
          expectRefusal(r, 7, 'CLP_E_RECOVERY_FAILED', target);
          expect(r.stderr).toContain('is a folder now');
          expect(await readFile(join(root, 'var/lib/clp/journal'), 'utf8')).toMatch(/"t":"begin"/);
          await rm(target, { recursive: true });
        }
        // rename() replaces a FIFO or a device without opening it: the file is back, nothing hangs.
        const r = run(['--root', root, '--json', 'recover'], {}, 20_000);
        expect(r.signal, r.stderr).toBeNull();
        expect(r.status, r.stderr).toBe(0);
        expect(JSON.parse(r.stdout).action).toBe('rolled-back');
        expect((await lstat(target)).isFile()).toBe(true);
        expect(await readFile(target, 'utf8')).toBe('config v1\n');
        await expectSentinelUntouched();
      });
    }
  });

  describe('--root that names no folder', () => {
    it('a root that does not exist is a usage error naming it, and nothing is created', async () => {
      const missing = join(work, 'no-such-root');
      // enroll writes the machine's settings under the root: it must not create a mistyped one either.
      for (const command of [
        ['status'],
        ['list'],
        ['recover'],
        ['uninstall', 'CLP1251201'],
        ['enroll', 'http://127.0.0.1:9', 'token'],
      ]) {
        expectRefusal(run(['--root', missing, ...command]), 2, 'CLP_E_BAD_ROOT', missing);
      }
      await expect(lstat(missing)).rejects.toMatchObject({ code: 'ENOENT' });
    });

    it('a relative root is taken from the working folder: a mistyped one is refused by its full path and nothing is created', async () => {
      const missing = join(work, 'no-such-relative-root');
      for (const command of [['status'], ['recover'], ['install', '/nonexistent.clp']]) {
        expectRefusal(
          run(['--root', relative(process.cwd(), missing), ...command]),
          2,
          'CLP_E_BAD_ROOT',
          missing,
        );
      }
      await expect(lstat(missing)).rejects.toMatchObject({ code: 'ENOENT' });
      const root = await makeRoot();
      const r = run(['--root', relative(process.cwd(), root), '--json', 'status']);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ root, stateDir: join(root, 'var/lib/clp') });
    });

    it('a root that is a file is a usage error naming it, and the file is untouched', async () => {
      const file = join(work, 'root-file');
      await writeFile(file, 'not a root\n');
      await chown(file, 0, 0);
      const st = await lstat(file);
      expectRefusal(run(['--root', file, 'status']), 2, 'CLP_E_BAD_ROOT', file);
      const other = await makeRoot();
      const patch = await freshPatch(other, 'CLP1251231');
      expectRefusal(run(['--root', file, 'install', patch]), 2, 'CLP_E_BAD_ROOT', file);
      const now = await lstat(file);
      expect([now.mtimeMs, now.ctimeMs, now.size]).toEqual([st.mtimeMs, st.ctimeMs, st.size]);
    });
  });
});
