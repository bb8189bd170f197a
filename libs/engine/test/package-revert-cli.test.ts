import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PacmanManager } from '../src/package-managers/pacman.ts';
import { hasTool, makePacmanPackage, makePacmanRoot, tempDir } from './package-fixtures.ts';

const CLPCTL = resolve(import.meta.dirname, '../../../apps/agent/dist/clpctl.mjs');
const missing = [
  ...['pacman', 'bsdtar'].filter((t) => !hasTool(t)),
  ...(existsSync(CLPCTL) ? [] : ['the built clpctl (npm run build)']),
];
if (missing.length > 0) console.warn(`skipped: needs ${missing.join(', ')} (clpctl pkg revert tests)`);

function clpctl(...args: string[]) {
  return clpctlWith({}, ...args);
}

function clpctlWith(env: Record<string, string>, ...args: string[]) {
  const r = spawnSync(process.execPath, [CLPCTL, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(missing.length > 0)('clpctl pkg revert', () => {
  let root: string;
  let work: string;
  beforeEach(async () => {
    root = await makePacmanRoot();
    work = await tempDir('pkg-cli');
    const cache = join(root, 'var/cache/pacman/pkg');
    await mkdir(cache, { recursive: true });
    for (const v of ['1.0-1', '2.0-1']) {
      const file = await makePacmanPackage(work, 'tool', v, { 'usr/share/tool/version': `${v}\n` });
      await copyFile(file, join(cache, `tool-${v}-any.pkg.tar.zst`));
    }
    await new PacmanManager(root).installFile(join(cache, 'tool-2.0-1-any.pkg.tar.zst'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('reverts to a cached version and says how to go back', () => {
    const r = clpctl('pkg', 'revert', 'tool', '1.0-1', '--root', root);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('tool 2.0-1 -> 1.0-1 (pacman, from cache');
    expect(r.stdout).toContain('to go back: clpctl pkg revert tool 2.0-1');
    const back = clpctl('--root', root, '--json', 'pkg', 'revert', 'tool', '2.0-1');
    expect(back.code).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({
      name: 'tool',
      fromVersion: '1.0-1',
      toVersion: '2.0-1',
      changed: true,
      packageManager: 'pacman',
    });
  });

  it('killed after each of its journal writes, pkg revert is rolled back by recover before its commit point and finished after it', async () => {
    const pm = new PacmanManager(root);
    const writes = ['begin', 'run', 'done', 'commit', 'end'];
    const seen: string[] = [];
    for (const [i, write] of writes.entries()) {
      const killed = clpctlWith(
        { CLP_TEST_KILL_AT_STEP: String(i + 1) },
        '--root',
        root,
        'pkg',
        'revert',
        'tool',
        '1.0-1',
      );
      expect(killed.signal, `kill after ${write}: ${killed.stderr}`).toBe('SIGKILL');
      const recovered = clpctl('--root', root, '--json', 'recover');
      expect(recovered.code, recovered.stderr).toBe(0);
      const action = JSON.parse(recovered.stdout).action as string;
      const pastCommit = i >= writes.indexOf('commit');
      expect(await pm.installedVersion('tool'), `kill after ${write}`).toBe(pastCommit ? '1.0-1' : '2.0-1');
      expect(action, `kill after ${write}`).toBe(
        pastCommit ? (write === 'end' ? 'nothing' : 'finished') : 'rolled-back',
      );
      seen.push(`${write}:${action}`);
      if (pastCommit) expect(clpctl('--root', root, 'pkg', 'revert', 'tool', '2.0-1').code).toBe(0);
      expect(await pm.installedVersion('tool')).toBe('2.0-1');
    }
    const history = JSON.parse(clpctl('--root', root, '--json', 'history').stdout) as Array<{
      op: string;
      result: string;
    }>;
    expect(history.filter((h) => h.op === 'recover' && h.result === 'rolled-back')).toHaveLength(3);
    expect(history.filter((h) => h.op === 'pkg-revert' && h.result === 'installed')).toHaveLength(4);
    expect(seen).toEqual([
      'begin:rolled-back',
      'run:rolled-back',
      'done:rolled-back',
      'commit:finished',
      'end:nothing',
    ]);
  });

  it('a version in no cache exits 10 with the error code', () => {
    const r = clpctl('--root', root, 'pkg', 'revert', 'tool', '9.9-1');
    expect(r.code).toBe(10);
    expect(r.stderr).toMatch(/^error CLP_E_PACKAGE_NOT_FOUND: no package file for tool 9\.9-1/);
  });

  it('an unknown package manager exits 5 with the error code as JSON', () => {
    const r = clpctl('--root', root, '--json', 'pkg', 'revert', 'tool', '1.0-1', '--package-manager', 'rpm');
    expect(r.code).toBe(5);
    expect(JSON.parse(r.stderr)).toMatchObject({ error: { code: 'CLP_E_NO_PACKAGE_MANAGER' } });
  });
});
