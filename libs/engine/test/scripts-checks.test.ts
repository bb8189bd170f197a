import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyPair } from '@clp/trust';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  engineStatus,
  explainPatch,
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

describe('scripts, services and checks', () => {
  let out: string;
  let root: string;
  let key: KeyPair;
  beforeAll(async () => {
    out = await tempDir('patches');
  });

  async function freshRoot(): Promise<void> {
    root = await makeRoot({ 'etc/app.conf': { content: 'v1\n', mode: 0o644 } });
    key = await trustedKey(root);
  }

  const replaceConf = fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'v2\n', {
    expectSha256: sha256('v1\n'),
  });

  it('runs a script by its shebang with CLP_ROOT, CLP_PATCH_DIR and the patch as working directory, its output in the log', async () => {
    await freshRoot();
    const script =
      '#!/bin/sh\nset -e\necho "root=$CLP_ROOT dir=$CLP_PATCH_DIR pwd=$(pwd)"\necho ran > "$CLP_ROOT/etc/script-ran"\n';
    const file = await buildPatch(
      out,
      {
        name: 'CLP1251201',
        actions: [replaceConf, { type: 'script', when: 'post', path: 'post.sh' }],
        entries: { 'payload/app.conf': 'v2\n', 'post.sh': script },
      },
      key,
    );
    const result = await installPatch(file, { root, runScriptsOnHost: true });
    expect(result.steps.map((s) => s.kind)).toEqual(['file', 'script']);
    expect(await readFile(join(root, 'etc/script-ran'), 'utf8')).toBe('ran\n');
    const log = await readFile(join(root, 'var/log/CLP.log'), 'utf8');
    const line = /\[post\.sh\] root=(\S+) dir=(\S+) pwd=(\S+)/.exec(log);
    expect(line?.[1]).toBe(root);
    expect(line?.[2]).toBe(line?.[3]);
    expect(line?.[2]).toMatch(/var\/lib\/clp\/tx\/.+\/patch$/);
  });

  it('a failing script rolls every change back and names the script and its status', async () => {
    await freshRoot();
    const before = await snapshotRoot(root);
    const file = await buildPatch(
      out,
      {
        name: 'CLP1251202',
        actions: [
          fileAction('add', '/opt/new/a.conf', 'payload/a.conf', 'a\n'),
          replaceConf,
          { type: 'script', when: 'post', path: 'fail.sh' },
        ],
        entries: {
          'payload/a.conf': 'a\n',
          'payload/app.conf': 'v2\n',
          'fail.sh': '#!/bin/sh\necho about to fail >&2\nexit 3\n',
        },
      },
      key,
    );
    const error = await failureOf(installPatch(file, { root, runScriptsOnHost: true }));
    expect(error.code).toBe('CLP_E_SCRIPT_FAILED');
    expect(error.message).toMatch(/fail\.sh exited with status 3/);
    expect(error.message).toMatch(/about to fail/);
    expect(await snapshotRoot(root)).toEqual(before);
    expect(await listInstalled({ root })).toEqual([]);
    expect((await readHistory({ root })).at(-1)).toMatchObject({
      result: 'rolled-back',
      code: 'CLP_E_SCRIPT_FAILED',
    });
  });

  it('a script that outlives its timeout is killed and rolled back', async () => {
    await freshRoot();
    const before = await snapshotRoot(root);
    const file = await buildPatch(
      out,
      {
        name: 'CLP1251203',
        actions: [replaceConf, { type: 'script', when: 'post', path: 'slow.sh', timeoutMs: 300 }],
        entries: { 'payload/app.conf': 'v2\n', 'slow.sh': '#!/bin/sh\nsleep 30\n' },
      },
      key,
    );
    const started = Date.now();
    expect((await failureOf(installPatch(file, { root, runScriptsOnHost: true }))).code).toBe(
      'CLP_E_SCRIPT_TIMEOUT',
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await snapshotRoot(root)).toEqual(before);
  });

  it('a failing health check rolls the patch back and marks it failed here until --force', async () => {
    await freshRoot();
    const before = await snapshotRoot(root);
    const patch = {
      name: 'CLP1251204',
      actions: [
        replaceConf,
        { type: 'check' as const, command: 'grep -q v3 "$CLP_ROOT/etc/app.conf"', withinMs: 1500 },
      ],
      entries: { 'payload/app.conf': 'v2\n' },
    };
    const file = await buildPatch(out, patch, key);
    const error = await failureOf(installPatch(file, { root, runScriptsOnHost: true }));
    expect(error.code).toBe('CLP_E_CHECK_FAILED');
    expect(await snapshotRoot(root)).toEqual(before);
    expect((await engineStatus({ root })).failed.map((f) => f.name)).toEqual(['CLP1251204']);
    const again = await failureOf(installPatch(file, { root, runScriptsOnHost: true }));
    expect(again.code).toBe('CLP_E_PREVIOUSLY_FAILED');
    const explained = await explainPatch(file, { root });
    expect(explained.refusals.map((r) => r.rule)).toEqual(['failed-before']);
    // With --force it is tried again (and fails its check again, rolled back again).
    expect((await failureOf(installPatch(file, { root, force: true, runScriptsOnHost: true }))).code).toBe(
      'CLP_E_CHECK_FAILED',
    );
  });

  it('a passing check lets the patch in; services under another root are recorded as skipped', async () => {
    await freshRoot();
    const file = await buildPatch(
      out,
      {
        name: 'CLP1251205',
        actions: [
          replaceConf,
          { type: 'service', action: 'reload', unit: 'nginx.service' },
          { type: 'check', command: 'grep -q v2 "$CLP_ROOT/etc/app.conf"', withinMs: 2000 },
        ],
        entries: { 'payload/app.conf': 'v2\n' },
      },
      key,
    );
    const result = await installPatch(file, { root, runScriptsOnHost: true });
    expect(result.checks.map((c) => c.ok)).toEqual([true]);
    expect(result.skipped).toHaveLength(1);
    expect(result.skipped[0]).toMatch(
      /systemctl reload nginx.service .*the root is .* not the running system/,
    );
    expect(await readFile(join(root, 'var/log/CLP.log'), 'utf8')).toMatch(
      /skipped: systemctl reload nginx.service/,
    );
    await uninstallPatch('CLP1251205', { root });
    expect(await readFile(join(root, 'etc/app.conf'), 'utf8')).toBe('v1\n');
  });

  it('a historic PowerShell patch stops before any change when pwsh is missing', async () => {
    await freshRoot();
    const before = await snapshotRoot(root);
    const file = await buildPatch(
      out,
      {
        name: 'CLP1250101',
        actions: [],
        entries: { 'Install-Patch.ps1': 'Write-Host "hello"\n', 'Remove-Patch.ps1': 'Write-Host "bye"\n' },
      },
      key,
    );
    const error = await failureOf(installPatch(file, { root, runScriptsOnHost: true }));
    expect(error.code).toBe('CLP_E_INTERPRETER_MISSING');
    expect(error.message).toMatch(/Install-Patch\.ps1 needs PowerShell \(pwsh\)/);
    expect(await snapshotRoot(root)).toEqual(before);
  });

  it('uninstall runs the remove script of a script patch', async () => {
    await freshRoot();
    const file = await buildPatch(
      out,
      {
        name: 'CLP1251206',
        actions: [],
        entries: {
          'Install-Script.ps1': '#!/bin/sh\necho installed > "$CLP_ROOT/etc/marker"\n',
          'Remove-Script.ps1': '#!/bin/sh\nrm "$CLP_ROOT/etc/marker"\n',
        },
      },
      key,
    );
    await installPatch(file, { root, runScriptsOnHost: true });
    expect(await readFile(join(root, 'etc/marker'), 'utf8')).toBe('installed\n');
    const result = await uninstallPatch('CLP1251206', { root, runScriptsOnHost: true });
    expect(result.steps.map((s) => s.description)).toEqual(['run Remove-Script.ps1']);
    await expect(readFile(join(root, 'etc/marker'))).rejects.toThrow(/ENOENT/);
  });
});
