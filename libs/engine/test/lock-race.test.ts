/**
 * One transaction at a time, provably: many real clpctl processes started at once against one
 * root. While they run, the test watches which of them have the journal open (/proc/PID/fd) and
 * fails if two ever do; afterwards every process either did its whole job or was refused with
 * CLP_E_BUSY (exit 11), and the history shows no transaction rolled back by another's recovery.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile, readlink, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildPatch, fileAction, makeRoot, tempDir, trustedKey } from './engine-fixtures.ts';
import { CLPCTL, ensureBundle } from './run-clpctl.ts';

interface Exit {
  args: string[];
  status: number | null;
  stderr: string;
}

function start(args: string[]): { child: ChildProcess; done: Promise<Exit> } {
  const child = spawn(process.execPath, [CLPCTL, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const done = new Promise<Exit>((resolve) =>
    child.on('close', (status) => resolve({ args, status, stderr })),
  );
  return { child, done };
}

/** Which of the pids have `file` open right now. */
async function holders(pids: number[], file: string): Promise<number[]> {
  const found: number[] = [];
  await Promise.all(
    pids.map(async (pid) => {
      const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
      for (const fd of fds) {
        if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === file) {
          found.push(pid);
          return;
        }
      }
    }),
  );
  return found;
}

async function until(check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const asRoot = process.getuid?.() === 0;
if (!asRoot) console.warn('skipped: the lock race needs root (patches set file owners)');

describe.skipIf(!asRoot)('one transaction at a time', () => {
  let work: string;
  beforeAll(async () => {
    ensureBundle();
    work = await tempDir('lock-race');
  });

  /** A patch adding /etc/NAME.conf whose post script takes a while and detects any overlap. */
  async function slowPatch(name: string, key: Awaited<ReturnType<typeof trustedKey>>, seconds = 1) {
    const script = `#!/bin/sh\nmkdir "$CLP_ROOT/inside" || exit 9\nsleep ${seconds}\nrmdir "$CLP_ROOT/inside"\n`;
    return buildPatch(
      join(work, name),
      {
        name,
        actions: [
          fileAction('add', `/etc/${name}.conf`, 'payload/x.conf', `${name}\n`),
          { type: 'script', when: 'post', path: 'slow.sh' },
        ],
        entries: { 'payload/x.conf': `${name}\n`, 'slow.sh': script },
      },
      key,
    );
  }

  it('an emptied lock file lets no second command in while the holder runs; a recover then never rolls back its live transaction', async () => {
    const root = await makeRoot();
    const key = await trustedKey(root);
    // Long enough for three more processes to start on a loaded machine.
    const first = await slowPatch('CLP1251101', key, 8);
    const second = await slowPatch('CLP1251102', key);
    const a = start(['--root', root, '--run-scripts-on-host', 'install', first]);
    const journal = join(root, 'var/lib/clp/journal');
    await until(async () => (await holders([a.child.pid as number], journal)).length === 1);
    // What the holder's lock file looks like before it has written its pid.
    await truncate(join(root, 'var/lib/clp/lock'), 0);
    const others = await Promise.all([
      start(['--root', root, 'recover']).done,
      start(['--root', root, '--run-scripts-on-host', 'install', second]).done,
      start(['--root', root, 'status']).done,
    ]);
    for (const r of others) {
      expect(r.stderr, r.args.join(' ')).toMatch(/^error CLP_E_BUSY: another clpctl/);
      expect(r.status).toBe(11);
    }
    const done = await a.done;
    expect(done.status, done.stderr).toBe(0);
    const history = await readFile(join(root, 'var/lib/clp/history.jsonl'), 'utf8');
    expect(history).toContain('"result":"installed"');
    expect(history).not.toContain('rolled-back');
  });

  it('many clpctl processes started at once: the journal is never open in two, and each one either did its job or was refused as busy', async () => {
    const root = await makeRoot();
    const key = await trustedKey(root);
    const names = ['CLP1251103', 'CLP1251104', 'CLP1251105', 'CLP1251106', 'CLP1251107'];
    const patches = await Promise.all(names.map((n) => slowPatch(n, key)));
    const journal = join(root, 'var/lib/clp/journal');
    const runs = [
      ...patches.map((p) => start(['--root', root, '--run-scripts-on-host', 'install', p])),
      start(['--root', root, 'recover']),
      start(['--root', root, 'recover']),
      start(['--root', root, 'status']),
    ];
    const pids = runs.map((r) => r.child.pid as number);
    let watching = true;
    let samples = 0;
    let maxTogether = 0;
    const watcher = (async () => {
      while (watching) {
        const open = await holders(pids, journal);
        maxTogether = Math.max(maxTogether, open.length);
        samples++;
      }
    })();
    const exits = await Promise.all(runs.map((r) => r.done));
    watching = false;
    await watcher;
    expect(samples).toBeGreaterThan(10);
    expect(maxTogether).toBe(1);
    const installed: string[] = [];
    for (const [i, r] of exits.entries()) {
      if (r.status === 11) {
        expect(r.stderr).toMatch(/^error CLP_E_BUSY: /);
        continue;
      }
      expect(r.status, `${r.args.join(' ')}: ${r.stderr}`).toBe(0);
      if (i < names.length) installed.push(names[i] as string);
    }
    expect(installed.length).toBeGreaterThan(0);
    const history = (await readFile(join(root, 'var/lib/clp/history.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { name: string; result: string });
    expect(
      history
        .filter((h) => h.result === 'installed')
        .map((h) => h.name)
        .sort(),
    ).toEqual(installed.sort());
    expect(history.some((h) => h.result !== 'installed')).toBe(false);
    const index = JSON.parse(await readFile(join(root, 'var/lib/clp/index.json'), 'utf8'));
    expect(index.installed.map((p: { name: string }) => p.name).sort()).toEqual(installed.sort());
    await expect(readFile(journal)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
