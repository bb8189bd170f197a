/** Builders for signed test patches and roots, and a full snapshot of a root, for the engine tests. */
import { createHash } from 'node:crypto';
import {
  chmod,
  chown,
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type Action, type PatchMeta, serializePatchMeta, writePatch } from '@clp/format';
import { generateKeyPair, type KeyPair, signPatch } from '@clp/trust';

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `clp-${prefix}-`));
}

/** A key pair whose public half is trusted by the root (ROOT/etc/clp/keys.d/NAME.pub). */
export async function trustedKey(root: string, name = 'test'): Promise<KeyPair> {
  const pair = generateKeyPair(name);
  const dir = join(root, 'etc/clp/keys.d');
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, `${name}.pub`),
    pair.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  );
  return pair;
}

/** A root with /etc/passwd, /etc/group, os-release and the given files (path → content or {content, mode, uid, gid}). */
export async function makeRoot(
  files: Record<string, string | { content: string; mode?: number; uid?: number; gid?: number }> = {},
): Promise<string> {
  const root = await tempDir('root');
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(
    join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/usr/sbin/nologin\nweb:x:33:33::/var/www:/usr/sbin/nologin\n',
  );
  await writeFile(join(root, 'etc/group'), 'root:x:0:\ndaemon:x:1:\nweb:x:33:\n');
  await writeFile(join(root, 'etc/os-release'), 'ID=debian\nVERSION_ID="12"\n');
  // The engine's own folders, so that a snapshot before the first command matches one after it.
  await mkdir(join(root, 'var/lib/clp'), { recursive: true });
  await mkdir(join(root, 'var/log'), { recursive: true });
  for (const [path, spec] of Object.entries(files)) {
    const s = typeof spec === 'string' ? { content: spec } : spec;
    const file = join(root, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, s.content);
    await chmod(file, s.mode ?? 0o644);
    if (s.uid !== undefined || s.gid !== undefined) await chown(file, s.uid ?? 0, s.gid ?? 0);
  }
  return root;
}

export interface TestPatch {
  name: string;
  actions: Action[];
  /** Entry name → content (payload files, scripts), or a file to take it from (package files). */
  entries?: Record<string, string | { content: string; mode?: number } | { file: string }>;
  architecture?: PatchMeta['architecture'];
  systems?: PatchMeta['systems'];
  series?: string;
}

/** Writes the patch as a .clp into dir, signed with key unless key is null. */
export async function buildPatch(dir: string, patch: TestPatch, key: KeyPair | null): Promise<string> {
  const meta: PatchMeta = {
    name: patch.name,
    version: '1',
    architecture: patch.architecture ?? 'any',
    series: patch.series ?? `CLP${patch.name.slice(-6)}`,
    systems: patch.systems ?? [],
    actions: patch.actions,
    description: `test patch ${patch.name}`,
    dialect: 'xml',
  };
  const entries = [
    { name: 'PKGINFO.meta', data: Buffer.from(serializePatchMeta(meta)) },
    ...Object.entries(patch.entries ?? {}).map(([name, spec]) => {
      if (typeof spec !== 'string' && 'file' in spec) return { name, file: spec.file };
      const s = typeof spec === 'string' ? { content: spec } : spec;
      return { name, data: Buffer.from(s.content), ...(s.mode !== undefined ? { mode: s.mode } : {}) };
    }),
  ];
  await mkdir(dir, { recursive: true });
  const unsigned = join(dir, `${patch.name}.unsigned.clp`);
  await writePatch(unsigned, entries);
  if (key === null) return unsigned;
  const out = join(dir, `${patch.name}.clp`);
  await signPatch(unsigned, out, key.privateKey, 'test signer');
  return out;
}

/** A file action that writes `content` (with its sha256 declared). */
export function fileAction(
  action: 'add' | 'replace',
  path: string,
  source: string,
  content: string,
  extra: Partial<Extract<Action, { type: 'file' }>> = {},
): Action {
  return { type: 'file', action, path, source, sha256: sha256(content), ...extra };
}

/**
 * Everything observable about a root: for each path (state and log excluded) its type, content
 * sha256, mode, uid, gid and link target. Two equal snapshots mean byte-identical trees.
 */
export async function snapshotRoot(
  root: string,
  exclude: string[] = ['var/lib/clp', 'var/log/CLP.log'],
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(rel: string): Promise<void> {
    if (exclude.includes(rel)) return;
    const path = join(root, rel);
    const st = await lstat(path);
    const id = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isDirectory()) {
      if (rel !== '') out[rel] = `dir ${id}`;
      for (const e of (await readdir(path)).sort()) await walk(rel === '' ? e : `${rel}/${e}`);
    } else if (st.isSymbolicLink()) {
      out[rel] = `link ${await readlink(path)}`;
    } else if (!st.isFile()) {
      // A FIFO, socket or device is described, never opened (opening a FIFO would block).
      out[rel] = `${st.isFIFO() ? 'fifo' : st.isSocket() ? 'socket' : `device ${st.rdev}`} ${id}`;
    } else {
      out[rel] = `file ${sha256(await readFile(path))} ${id}`;
    }
  }
  await walk('');
  return out;
}

export async function copyInto(src: string, dest: string): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  await copyFile(src, dest);
}
