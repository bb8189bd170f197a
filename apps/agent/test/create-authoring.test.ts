/**
 * Authoring without computing a hash by hand: `clpctl new`, `create` filling in sha256 and
 * expect-sha256, and `create --from-diff` of two trees, whose patch takes BEFORE to AFTER and back.
 */
import { spawnSync } from 'node:child_process';
import {
  chmod,
  chown,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ACTION_ELEMENTS, openPatch, readPatchMeta } from '@clp/format';
import { hashFile } from '@clp/trust';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../../..');
const CLI = join(REPO, 'apps/agent/dist/clpctl.mjs');
const EXAMPLE = join(REPO, 'examples/CLP1251123');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function clpctl(args: string[]): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: work, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function jsonError(r: Run): Record<string, unknown> & { code: string; message: string } {
  return JSON.parse(r.stderr).error;
}

const sha256Of = async (file: string) => (await hashFile(file)).sha256;

let work: string;
let keyFile: string;
let pubFile: string;

beforeAll(async () => {
  const build = spawnSync(process.execPath, [join(REPO, 'scripts/build.mjs')], {
    cwd: REPO,
    encoding: 'utf8',
  });
  if (build.status !== 0) throw new Error(`build failed: ${build.stderr}`);
  work = await mkdtemp(join(tmpdir(), 'clp-create-'));
  const key = clpctl(['--json', 'keygen', '--name', 'release', '--out', join(work, 'keys')]);
  expect(key.code, key.stderr).toBe(0);
  ({ keyFile, pubFile } = JSON.parse(key.stdout));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** A copy of the example with every sha256 and expect-sha256 taken out of PKGINFO.meta. */
async function exampleWithoutHashes(name: string): Promise<string> {
  const dir = join(work, name);
  await cp(EXAMPLE, dir, { recursive: true });
  const meta = await readFile(join(dir, 'PKGINFO.meta'), 'utf8');
  await writeFile(join(dir, 'PKGINFO.meta'), meta.replace(/\s+(expect-)?sha256="[0-9a-f]+"/g, ''));
  return dir;
}

async function archivedMeta(file: string) {
  const archive = await openPatch(file);
  try {
    return archive.meta;
  } finally {
    await archive.close();
  }
}

describe('clpctl new', () => {
  it('makes a patch folder with a commented PKGINFO.meta whose examples are valid actions', async () => {
    const r = clpctl(['--json', 'new', 'CLP1251201']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      name: 'CLP1251201',
      dir: join(work, 'CLP1251201'),
      files: ['PKGINFO.meta', 'payload/'],
    });
    expect((await lstat(join(work, 'CLP1251201/payload'))).isDirectory()).toBe(true);
    const text = await readFile(join(work, 'CLP1251201/PKGINFO.meta'), 'utf8');
    // As made, it says who it is and does nothing yet: create asks for an action.
    const empty = clpctl(['--json', 'create', join(work, 'CLP1251201')]);
    expect(empty.code).toBe(3);
    expect(jsonError(empty)).toMatchObject({
      code: 'CLP_E_EMPTY_PATCH',
      message: `CLP1251201 has no actions and no install script (Install-Script.ps1); a patch must change something: add a File, Package, Service or Script action under <Actions> in ${join(work, 'CLP1251201/PKGINFO.meta')} (its comments show each kind)`,
    });
    // Every example in its comments, taken out of the comment, is an action the reader accepts.
    const examples = [...text.matchAll(/^\s*(<(File|Package|Service|Script|Check|System) [^>]*\/>)\s*$/gm)];
    const elements = new Set(examples.map((m) => m[2]));
    for (const element of [...Object.keys(ACTION_ELEMENTS), 'System']) expect(elements).toContain(element);
    const actions = examples.filter((m) => m[2] !== 'System').map((m) => m[1]);
    const systems = examples.filter((m) => m[2] === 'System').map((m) => m[1]);
    const live = text
      .replace(/<Actions>[\s\S]*<\/Actions>/, `<Actions>\n${actions.join('\n')}\n</Actions>`)
      .replace(/<Severity>/, `<Systems>${systems.join('')}</Systems>\n  <Severity>`);
    const sources = [...live.matchAll(/(?:source|path)="(payload\/[^"]+|scripts\/[^"]+)"/g)].map(
      (m) => m[1]!,
    );
    const meta = readPatchMeta(live, ['PKGINFO.meta', ...sources]);
    expect(meta).toMatchObject({ name: 'CLP1251201', created: '2025-12-01', architecture: 'any' });
    expect(meta.actions.length).toBe(actions.length);
  });

  it('never overwrites, and refuses a name that is not CLP + revision + YYMMDD (exit 2)', async () => {
    // The next step it names builds a signed patch, as every machine requires.
    const told = clpctl(['new', 'CLP1251209']);
    expect(told.code, told.stderr).toBe(0);
    expect(told.stdout).toContain("then 'clpctl create CLP1251209 --sign KEY'");
    const again = clpctl(['--json', 'new', 'CLP1251201']);
    expect(again.code).toBe(2);
    expect(jsonError(again)).toMatchObject({
      code: 'CLP_E_USAGE',
      message: expect.stringContaining('exists already'),
    });
    const bad = clpctl(['--json', 'new', 'CLP991399']);
    expect(bad.code).toBe(2);
    expect(jsonError(bad)).toMatchObject({ code: 'CLP_E_USAGE', name: 'CLP991399' });
  });
});

describe('create fills in what it can compute', () => {
  it('fills in the sha256 of every payload file and lists it; the folder is left as written', async () => {
    const dir = await exampleWithoutHashes('fill-sha');
    const before = await readFile(join(dir, 'PKGINFO.meta'), 'utf8');
    const out = join(work, 'fill-sha.clp');
    const r = clpctl(['--json', 'create', dir, '-o', out, '--sign', keyFile]);
    expect(r.code, r.stderr).toBe(0);
    const conf = await sha256Of(join(dir, 'payload/clp-demo.conf'));
    const motd = await sha256Of(join(dir, 'payload/motd'));
    expect(JSON.parse(r.stdout).filled).toEqual([
      {
        action: 'Actions/File[1] (add /etc/clp-demo.conf)',
        attribute: 'sha256',
        value: conf,
        from: 'payload/clp-demo.conf',
      },
      {
        action: 'Actions/File[2] (replace /etc/motd)',
        attribute: 'sha256',
        value: motd,
        from: 'payload/motd',
      },
    ]);
    expect((await archivedMeta(out)).actions).toMatchObject([{ sha256: conf }, { sha256: motd }]);
    expect(await readFile(join(dir, 'PKGINFO.meta'), 'utf8')).toBe(before);
    const keys = join(work, 'fill-keys');
    await mkdir(keys);
    await cp(pubFile, join(keys, 'release.pub'));
    expect(clpctl(['verify', out, '--keys', keys]).code).toBe(0);
    // The example, whose hashes are all written, is built as it is.
    expect(
      JSON.parse(clpctl(['--json', 'create', EXAMPLE, '-o', join(work, 'as-is.clp')]).stdout).filled,
    ).toEqual([]);
  });

  it('refuses a written sha256 that is not the file, naming the action (exit 3)', async () => {
    const dir = join(work, 'wrong-sha');
    await cp(EXAMPLE, dir, { recursive: true });
    await writeFile(join(dir, 'payload/clp-demo.conf'), 'changed after the sha256 was written\n');
    const r = clpctl(['--json', 'create', dir, '-o', join(work, 'wrong-sha.clp')]);
    expect(r.code).toBe(3);
    expect(jsonError(r)).toMatchObject({
      code: 'CLP_E_HASH_MISMATCH',
      action: 'Actions/File[1] (add /etc/clp-demo.conf)',
      entry: 'payload/clp-demo.conf',
      message: expect.stringContaining('PKGINFO.meta Actions/File[1] (add /etc/clp-demo.conf) says sha256'),
    });
  });

  it('with --expect-from ROOT fills in expect-sha256 of what a replace changes, and refuses one that disagrees with ROOT', async () => {
    const dir = await exampleWithoutHashes('expect-from');
    const out = join(work, 'expect-from.clp');
    const root = join(REPO, 'examples/demo-root');
    const r = clpctl(['--json', 'create', dir, '-o', out, '--expect-from', root]);
    expect(r.code, r.stderr).toBe(0);
    const expected = await sha256Of(join(root, 'etc/motd'));
    expect(JSON.parse(r.stdout).filled).toContainEqual({
      action: 'Actions/File[2] (replace /etc/motd)',
      attribute: 'expect-sha256',
      value: expected,
      from: join(root, 'etc/motd'),
    });
    expect((await archivedMeta(out)).actions[1]).toMatchObject({ action: 'replace', expectSha256: expected });

    // The example says which motd it replaces: another root's motd is refused, naming the action.
    const other = join(work, 'other-root');
    await mkdir(join(other, 'etc'), { recursive: true });
    await writeFile(join(other, 'etc/motd'), 'Another system\n');
    const refused = clpctl([
      '--json',
      'create',
      EXAMPLE,
      '-o',
      join(work, 'refused.clp'),
      '--expect-from',
      other,
    ]);
    expect(refused.code).toBe(3);
    expect(jsonError(refused)).toMatchObject({
      code: 'CLP_E_HASH_MISMATCH',
      action: 'Actions/File[2] (replace /etc/motd)',
      file: join(other, 'etc/motd'),
      expected,
    });
    // A root without the file that a replace changes would not take the patch.
    const bare = join(work, 'bare-root');
    await mkdir(bare);
    const missing = clpctl(['--json', 'create', dir, '-o', join(work, 'missing.clp'), '--expect-from', bare]);
    expect(missing.code).toBe(5);
    expect(jsonError(missing)).toMatchObject({
      code: 'CLP_E_PRECONDITION',
      action: 'Actions/File[2] (replace /etc/motd)',
    });
    const nowhere = clpctl(['--json', 'create', dir, '--expect-from', join(work, 'nowhere')]);
    expect(nowhere.code).toBe(10);
    expect(jsonError(nowhere).code).toBe('CLP_E_NOT_FOUND');
  });
});

/** Every path of a tree with what it is: content, mode and owner (links by their target). */
async function snapshot(top: string, skip: readonly string[] = []): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const visit = async (rel: string) => {
    for (const name of await readdir(rel === '' ? top : join(top, rel))) {
      const path = rel === '' ? name : `${rel}/${name}`;
      if (skip.some((s) => path === s || path.startsWith(`${s}/`))) continue;
      const info = await lstat(join(top, path));
      const who = `${(info.mode & 0o7777).toString(8)} ${info.uid}:${info.gid}`;
      if (info.isDirectory()) {
        out[path] = `folder ${who}`;
        await visit(path);
      } else if (info.isSymbolicLink()) out[path] = 'link';
      else out[path] = `file ${who} ${await sha256Of(join(top, path))}`;
    }
  };
  await visit('');
  return out;
}

describe('create --from-diff BEFORE AFTER', () => {
  let before: string;
  let after: string;

  beforeAll(async () => {
    // BEFORE: a small root as shipped. AFTER: the same root as an administrator fixed it.
    before = join(work, 'before');
    await mkdir(join(before, 'etc/app'), { recursive: true, mode: 0o755 });
    await cp('/etc/passwd', join(before, 'etc/passwd'));
    await cp('/etc/group', join(before, 'etc/group'));
    await writeFile(join(before, 'etc/motd'), 'Welcome\n');
    await writeFile(join(before, 'etc/app/app.conf'), 'level=info\n', { mode: 0o640 });
    await chown(join(before, 'etc/app/app.conf'), 0, 1);
    await writeFile(join(before, 'etc/obsolete.conf'), 'old\n');
    await writeFile(join(before, 'etc/keep.conf'), 'unchanged\n');
    await writeFile(join(before, 'etc/hook.sh'), '#!/bin/sh\n', { mode: 0o644 });
    await writeFile(join(before, 'etc/owned.conf'), 'x\n');
    await symlink('motd', join(before, 'etc/motd.link'));
    after = join(work, 'after');
    expect(spawnSync('cp', ['-a', before, after]).status).toBe(0);
    await writeFile(join(after, 'etc/motd'), 'Welcome, patched\n');
    await writeFile(join(after, 'etc/app/app.conf'), 'level=warn\n');
    await chmod(join(after, 'etc/app/app.conf'), 0o600);
    await rm(join(after, 'etc/obsolete.conf'));
    await chmod(join(after, 'etc/hook.sh'), 0o755);
    await chown(join(after, 'etc/owned.conf'), 1, 1);
    await mkdir(join(after, 'etc/new/deeper'), { recursive: true, mode: 0o755 });
    await writeFile(join(after, 'etc/new/deeper/added.conf'), 'added\n', { mode: 0o600 });
    await chown(join(after, 'etc/new/deeper/added.conf'), 1, 1);
  });

  it('makes a patch that turns BEFORE into AFTER exactly (content, mode, owner), and whose uninstall gives BEFORE back', async () => {
    const out = join(work, 'CLP1251202.clp');
    const made = clpctl([
      '--json',
      'create',
      '--from-diff',
      before,
      after,
      '--name',
      'CLP1251202',
      '-o',
      out,
      '--sign',
      keyFile,
    ]);
    expect(made.code, made.stderr).toBe(0);
    expect(JSON.parse(made.stdout)).toMatchObject({
      name: 'CLP1251202',
      signed: true,
      actions: 6,
      folder: null,
    });
    const actions = (await archivedMeta(out)).actions.map((a) =>
      a.type === 'file' ? `${a.action} ${a.path}` : a.type,
    );
    expect(actions).toEqual([
      'replace /etc/app/app.conf',
      'replace /etc/hook.sh',
      'replace /etc/motd',
      'add /etc/new/deeper/added.conf',
      'remove /etc/obsolete.conf',
      'replace /etc/owned.conf',
    ]);

    const machine = join(work, 'machine');
    expect(spawnSync('cp', ['-a', before, machine]).status).toBe(0);
    await mkdir(join(machine, 'etc/clp/keys.d'), { recursive: true });
    await cp(pubFile, join(machine, 'etc/clp/keys.d/release.pub'));
    const state = ['etc/clp', 'var'];
    const installed = clpctl(['--root', machine, 'install', out]);
    expect(installed.code, installed.stderr).toBe(0);
    expect(await snapshot(machine, state)).toEqual(await snapshot(after));
    const removed = clpctl(['--root', machine, 'uninstall', 'CLP1251202']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(await snapshot(machine, state)).toEqual(await snapshot(before));
  });

  it('keeps the patch folder it made with --folder, and takes --target-dir for trees that stand for a folder', async () => {
    const folder = join(work, 'etc-patch');
    const r = clpctl([
      'create',
      '--from-diff',
      join(before, 'etc'),
      join(after, 'etc'),
      '--target-dir',
      '/etc',
      '--name',
      'CLP1251203',
      '--folder',
      folder,
      '-o',
      join(work, 'CLP1251203.clp'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`the patch folder is kept in ${folder}`);
    const meta = readPatchMeta(await readFile(join(folder, 'PKGINFO.meta'), 'utf8'), [
      'PKGINFO.meta',
      'payload/app/app.conf',
      'payload/hook.sh',
      'payload/motd',
      'payload/new/deeper/added.conf',
      'payload/owned.conf',
    ]);
    expect(meta.actions.find((a) => a.type === 'file' && a.action === 'add')).toMatchObject({
      path: '/etc/new/deeper/added.conf',
      source: 'payload/new/deeper/added.conf',
      mode: 0o600,
      owner: 'daemon',
      group: 'daemon',
    });
    // Building the kept folder again gives the same patch: nothing is left to fill in.
    const again = clpctl(['--json', 'create', folder, '-o', join(work, 'again.clp')]);
    expect(JSON.parse(again.stdout).filled).toEqual([]);
  });

  it('refuses what a patch cannot say: a changed link, two equal trees, no name', async () => {
    const linked = join(work, 'after-link');
    expect(spawnSync('cp', ['-a', after, linked]).status).toBe(0);
    await rm(join(linked, 'etc/motd.link'));
    await symlink('keep.conf', join(linked, 'etc/motd.link'));
    const link = clpctl(['--json', 'create', '--from-diff', before, linked, '--name', 'CLP1251204']);
    expect(link.code).toBe(2);
    expect(jsonError(link)).toMatchObject({ code: 'CLP_E_SOURCE_DIR', path: 'etc/motd.link' });
    const same = clpctl(['--json', 'create', '--from-diff', before, before, '--name', 'CLP1251204']);
    expect(same.code).toBe(3);
    expect(jsonError(same).code).toBe('CLP_E_EMPTY_PATCH');
    const unnamed = clpctl(['--json', 'create', '--from-diff', before, after]);
    expect(unnamed.code).toBe(2);
    expect(jsonError(unnamed)).toMatchObject({
      code: 'CLP_E_USAGE',
      message: expect.stringContaining('--name'),
    });
  });
});
