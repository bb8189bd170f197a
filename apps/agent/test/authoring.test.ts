import { spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { openPatch, writePatch } from '@clp/format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';

const REPO = resolve(import.meta.dirname, '../../..');
const CLI = join(REPO, 'apps/agent/dist/clpctl.mjs');
const DECLARATIVE = join(REPO, 'examples/CLP1251123');
const HISTORIC = join(REPO, 'examples/CLP1250101-historic');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built clpctl as a real process. */
function clpctl(args: string[], cwd = work): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The `CODE` of an `error CODE: message` line. */
function errorCode(r: Run): string | undefined {
  return /^error (CLP_E_[A-Z_]+):/m.exec(r.stderr)?.[1];
}

let work: string;
let keys: string; // private keys
let trustA: string; // keys.d trusting only A
let keyA: { keyId: string; keyFile: string; pubFile: string };
let keyB: { keyId: string; keyFile: string; pubFile: string };

beforeAll(async () => {
  const build = spawnSync(process.execPath, [join(REPO, 'scripts/build.mjs')], {
    cwd: REPO,
    encoding: 'utf8',
  });
  if (build.status !== 0) throw new Error(`build failed: ${build.stderr}`);
  work = await mkdtemp(join(tmpdir(), 'clp-authoring-'));
  keys = join(work, 'keys');
  const a = clpctl(['--json', 'keygen', '--name', 'release-a', '--out', keys]);
  const b = clpctl(['--json', 'keygen', '--name', 'release-b', '--out', keys]);
  expect(a.code, a.stderr).toBe(0);
  expect(b.code, b.stderr).toBe(0);
  keyA = JSON.parse(a.stdout);
  keyB = JSON.parse(b.stdout);
  trustA = join(work, 'trust-a');
  await mkdir(trustA);
  await cp(keyA.pubFile, join(trustA, 'release-a.pub'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Creates a signed copy of the declarative example and returns its path. */
function createSigned(name: string, keyFile = keyA.keyFile): string {
  const out = join(work, name);
  const r = clpctl(['create', DECLARATIVE, '-o', out, '--sign', keyFile]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

/** Every entry of an archive as bytes (small test archives only). */
async function readAll(file: string): Promise<Map<string, Buffer>> {
  const archive = await openPatch(file);
  try {
    const out = new Map<string, Buffer>();
    for (const e of archive.entries) out.set(e.name, await archive.readEntry(e.name, 1 << 20));
    return out;
  } finally {
    await archive.close();
  }
}

async function rezip(file: string, entries: Map<string, Buffer>): Promise<void> {
  await writePatch(
    file,
    [...entries].map(([name, data]) => ({ name, data })),
  );
}

describe('clpctl keygen', () => {
  it('refuses to overwrite an existing key and exits 2', async () => {
    const before = await readFile(keyA.keyFile, 'utf8');
    const r = clpctl(['keygen', '--name', 'release-a', '--out', keys]);
    expect(r.code).toBe(2);
    expect(errorCode(r)).toBe('CLP_E_KEY_EXISTS');
    expect(await readFile(keyA.keyFile, 'utf8')).toBe(before);
  });

  it('writes the private key with mode 0600', async () => {
    expect((await stat(keyA.keyFile)).mode & 0o777).toBe(0o600);
    expect(keyA.keyId).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('create, sign, verify round trip', () => {
  it('the declarative example: create --sign, then verify exits 0 and names the key', () => {
    const file = createSigned('decl.clp');
    const r = clpctl(['--json', 'verify', file, '--keys', trustA]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      valid: true,
      name: 'CLP1251123',
      keyId: keyA.keyId,
      keyName: 'release-a',
      entries: 3,
    });
  });

  it('the declarative example: create unsigned, verify says CLP_E_UNSIGNED (exit 4), then sign makes it verify', () => {
    const file = join(work, 'decl-unsigned.clp');
    expect(clpctl(['create', DECLARATIVE, '-o', file]).code).toBe(0);
    const unsigned = clpctl(['verify', file, '--keys', trustA]);
    expect(unsigned.code).toBe(4);
    expect(errorCode(unsigned)).toBe('CLP_E_UNSIGNED');
    const s = clpctl(['sign', file, '--key', keyA.keyFile]);
    expect(s.code, s.stderr).toBe(0);
    expect(clpctl(['verify', file, '--keys', trustA]).code).toBe(0);
  });

  it('the historic form create PATH NAME writes NAME.clp in the current folder, and it signs and verifies', async () => {
    const dir = join(work, 'historic-cwd');
    await mkdir(dir);
    const c = clpctl(['create', HISTORIC, 'CLP1250101'], dir);
    expect(c.code, c.stderr).toBe(0);
    const file = join(dir, 'CLP1250101.clp');
    expect((await stat(file)).isFile()).toBe(true);
    expect(clpctl(['sign', file, '--key', keyA.keyFile, '--signer', 'Release Team']).code).toBe(0);
    const v = clpctl(['--json', 'verify', file, '--keys', trustA]);
    expect(v.code, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ name: 'CLP1250101', signer: 'Release Team', entries: 3 });
    const i = clpctl(['inspect', file, '--keys', trustA, '--json']);
    expect(i.code, i.stderr).toBe(0);
    const report = JSON.parse(i.stdout);
    expect(report.meta).toMatchObject({
      dialect: 'ini',
      installScript: 'Install-Patch.ps1',
      removeScript: 'Remove-Patch.ps1',
    });
    expect(report.signature).toMatchObject({ keyId: keyA.keyId, trusted: true });
  });

  it('the historic form refuses a NAME that PKGINFO.meta does not carry (exit 2)', async () => {
    const r = clpctl(['create', HISTORIC, 'CLP2250101']);
    expect(r.code).toBe(2);
    expect(errorCode(r)).toBe('CLP_E_USAGE');
    await expect(stat(join(work, 'CLP2250101.clp'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('verify takes its keys from ROOT/etc/clp/keys.d with --root', async () => {
    const file = createSigned('decl-root.clp');
    const root = join(work, 'root');
    await mkdir(join(root, 'etc/clp/keys.d'), { recursive: true });
    expect(errorCode(clpctl(['--root', root, 'verify', file]))).toBe('CLP_E_UNKNOWN_KEY');
    await cp(keyA.pubFile, join(root, 'etc/clp/keys.d/release-a.pub'));
    expect(clpctl(['--root', root, 'verify', file]).code).toBe(0);
  });
});

describe('create checks what PKGINFO.meta says', () => {
  it('a wrong sha256 in PKGINFO.meta is CLP_E_HASH_MISMATCH naming the file, and nothing is written', async () => {
    const dir = join(work, 'bad-hash');
    await cp(DECLARATIVE, dir, { recursive: true });
    await writeFile(join(dir, 'payload/motd'), 'Something else\n');
    const out = join(work, 'bad-hash.clp');
    const r = clpctl(['create', dir, '-o', out]);
    expect(r.code).toBe(3);
    expect(errorCode(r)).toBe('CLP_E_HASH_MISMATCH');
    expect(r.stderr).toContain('payload/motd');
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a folder holding a SIGNATURE file is refused', async () => {
    const dir = join(work, 'has-sig');
    await cp(DECLARATIVE, dir, { recursive: true });
    await writeFile(join(dir, 'SIGNATURE'), '{}');
    const r = clpctl(['create', dir, '-o', join(work, 'has-sig.clp')]);
    expect(r.code).toBe(2);
    expect(errorCode(r)).toBe('CLP_E_USAGE');
  });
});

describe('tampering', () => {
  it('changing one byte of any entry and re-zipping makes verify fail naming the entry', async () => {
    const file = createSigned('tamper-src.clp');
    const entries = await readAll(file);
    expect([...entries.keys()].sort()).toEqual([
      'PKGINFO.meta',
      'SIGNATURE',
      'payload/clp-demo.conf',
      'payload/motd',
    ]);
    for (const name of entries.keys()) {
      const copy = new Map(entries);
      const data = Buffer.from(entries.get(name)!);
      // A byte inside free text, so that the entry stays well-formed and only the trust check can notice.
      const at =
        name === 'PKGINFO.meta'
          ? data.indexOf('Demo:')
          : name === 'SIGNATURE'
            ? data.indexOf('clp-demo.conf')
            : data.length >> 1;
      expect(at).toBeGreaterThan(0);
      data[at] = (data[at] ?? 0) ^ 0x01;
      copy.set(name, data);
      const tampered = join(work, `tamper-${name.replace(/\W/g, '_')}.clp`);
      await rezip(tampered, copy);
      const r = clpctl(['verify', tampered, '--keys', trustA]);
      expect(r.code, `${name}: ${r.stderr}`).toBe(4);
      if (name === 'SIGNATURE') expect(errorCode(r)).toBe('CLP_E_SIGNATURE_INVALID');
      else {
        expect(errorCode(r)).toBe('CLP_E_MANIFEST_MISMATCH');
        expect(r.stderr).toContain(name);
      }
    }
  });

  it('an entry added after signing, or a signed entry removed, makes verify fail naming it', async () => {
    const file = createSigned('tamper-add.clp');
    const entries = await readAll(file);
    const added = new Map(entries).set('payload/extra', Buffer.from('extra\n'));
    await rezip(join(work, 'added.clp'), added);
    const a = clpctl(['verify', join(work, 'added.clp'), '--keys', trustA]);
    expect(errorCode(a)).toBe('CLP_E_MANIFEST_MISMATCH');
    expect(a.stderr).toContain('payload/extra');

    const historic = join(work, 'hist-rm.clp');
    expect(clpctl(['create', HISTORIC, '-o', historic, '--sign', keyA.keyFile]).code).toBe(0);
    const h = await readAll(historic);
    h.delete('Remove-Patch.ps1');
    await rezip(historic, h);
    const removed = clpctl(['verify', historic, '--keys', trustA]);
    expect(removed.code).toBe(4);
    expect(errorCode(removed)).toBe('CLP_E_MANIFEST_MISMATCH');
    expect(removed.stderr).toContain('Remove-Patch.ps1');
  });

  it('a raw byte flip inside the stored data of any entry makes verify fail with a coded error', async () => {
    const file = createSigned('raw-src.clp');
    const raw = await readFile(file);
    const regions = await dataRegions(file, raw);
    expect(regions.map((r) => r.name).sort()).toEqual([
      'PKGINFO.meta',
      'SIGNATURE',
      'payload/clp-demo.conf',
      'payload/motd',
    ]);
    for (const region of regions) {
      for (const at of [
        region.start,
        region.start + (region.length >> 1),
        region.start + region.length - 1,
      ]) {
        const flipped = Buffer.from(raw);
        flipped[at] = (flipped[at] ?? 0) ^ 0x20;
        const out = join(work, 'raw-flip.clp');
        await writeFile(out, flipped);
        const r = clpctl(['verify', out, '--keys', trustA]);
        if (sameContent(raw, flipped, region)) {
          // The flip landed in the unused padding bits after deflate's end-of-block code: the entry's
          // bytes are unchanged, so the signature still holds.
          expect(r.code, `${region.name}@${at}: ${r.stderr}`).toBe(0);
          continue;
        }
        expect([3, 4], `${region.name}@${at}: ${r.code} ${r.stderr}`).toContain(r.code);
        expect(errorCode(r), r.stderr).toMatch(/^CLP_E_/);
      }
    }
  });
});

describe('keys', () => {
  it('a patch signed by a key that is not trusted is CLP_E_UNKNOWN_KEY (exit 4)', () => {
    const file = createSigned('by-b.clp', keyB.keyFile);
    const r = clpctl(['verify', file, '--keys', trustA]);
    expect(r.code).toBe(4);
    expect(errorCode(r)).toBe('CLP_E_UNKNOWN_KEY');
  });

  it('a revoked key is CLP_E_REVOKED_KEY (exit 4) even with its .pub still present', async () => {
    const file = createSigned('by-a-revoked.clp');
    const dir = join(work, 'trust-revoked');
    await mkdir(dir);
    await cp(keyA.pubFile, join(dir, 'release-a.pub'));
    await writeFile(join(dir, 'revoked'), `# compromised\n${keyA.keyId}\n`);
    const r = clpctl(['verify', file, '--keys', dir]);
    expect(r.code).toBe(4);
    expect(errorCode(r)).toBe('CLP_E_REVOKED_KEY');
  });

  it('with two trusted keys (rotation) patches signed by either verify', async () => {
    const dir = join(work, 'trust-both');
    await mkdir(dir);
    await cp(keyA.pubFile, join(dir, 'release-a.pub'));
    await cp(keyB.pubFile, join(dir, 'release-b.pub'));
    expect(clpctl(['verify', createSigned('rot-a.clp'), '--keys', dir]).code).toBe(0);
    expect(clpctl(['verify', createSigned('rot-b.clp', keyB.keyFile), '--keys', dir]).code).toBe(0);
  });

  it('re-signing in place replaces the old signature', () => {
    const file = createSigned('resign.clp');
    expect(clpctl(['sign', file, '--key', keyB.keyFile]).code).toBe(0);
    expect(errorCode(clpctl(['verify', file, '--keys', trustA]))).toBe('CLP_E_UNKNOWN_KEY');
  });

  it('an empty keys folder trusts nothing, and a --keys folder that does not exist is not found (exit 10)', async () => {
    const empty = join(work, 'no-keys-here');
    await mkdir(empty);
    const r = clpctl(['verify', createSigned('nokeys.clp'), '--keys', empty]);
    expect(r.code).toBe(4);
    expect(errorCode(r)).toBe('CLP_E_UNKNOWN_KEY');
    const missing = clpctl(['verify', join(work, 'nokeys.clp'), '--keys', join(work, 'nowhere')]);
    expect(missing.code).toBe(10);
    expect(errorCode(missing)).toBe('CLP_E_NOT_FOUND');
  });

  it('a missing key file for sign is CLP_E_KEY_NOT_FOUND (exit 10)', () => {
    const r = clpctl(['sign', createSigned('nokey.clp'), '--key', join(work, 'absent.key')]);
    expect(r.code).toBe(10);
    expect(errorCode(r)).toBe('CLP_E_KEY_NOT_FOUND');
  });
});

describe('inspect and errors', () => {
  it('inspect lists metadata, actions, entries with sha256, and an untrusted signer without failing', () => {
    const file = createSigned('inspect.clp', keyB.keyFile);
    const r = clpctl(['--json', 'inspect', file, '--keys', trustA]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.meta.name).toBe('CLP1251123');
    expect(report.meta.actions).toHaveLength(2);
    expect(report.entries).toContainEqual({
      name: 'payload/motd',
      size: 83,
      sha256: '13e39c9d576cf4a050b95e61af2cb5eb9643b8e1c6d5068791426aa2be6e42de',
    });
    expect(report.signature).toMatchObject({
      keyId: keyB.keyId,
      trusted: false,
      problem: { code: 'CLP_E_UNKNOWN_KEY' },
    });
    const text = clpctl(['inspect', file, '--keys', trustA]);
    expect(text.stdout).toContain('file replace /etc/motd');
    expect(text.stdout).toContain('NOT trusted');
  });

  it('errors are JSON on stderr with --json, and a missing file is exit 10', () => {
    const r = clpctl(['--json', 'verify', join(work, 'missing.clp'), '--keys', trustA]);
    expect(r.code).toBe(10);
    expect(JSON.parse(r.stderr)).toMatchObject({ error: { code: 'CLP_E_NOT_FOUND' } });
  });
});

/** Where each entry's stored (compressed) bytes lie in the raw zip. */
/** True when a deflated region still inflates to the same bytes after a flip. */
function sameContent(raw: Buffer, flipped: Buffer, region: { start: number; length: number }): boolean {
  const slice = (b: Buffer) => b.subarray(region.start, region.start + region.length);
  try {
    return inflateRawSync(slice(flipped)).equals(inflateRawSync(slice(raw)));
  } catch {
    return false;
  }
}

async function dataRegions(
  file: string,
  raw: Buffer,
): Promise<Array<{ name: string; start: number; length: number }>> {
  const zip = await new Promise<yauzl.ZipFile>((ok, fail) =>
    yauzl.open(file, { lazyEntries: true, autoClose: false }, (e, z) => (e ? fail(e) : ok(z))),
  );
  const out: Array<{ name: string; start: number; length: number }> = [];
  await new Promise<void>((ok, fail) => {
    zip.on('entry', (entry: yauzl.Entry) => {
      const h = entry.relativeOffsetOfLocalHeader;
      const start = h + 30 + raw.readUInt16LE(h + 26) + raw.readUInt16LE(h + 28);
      out.push({ name: entry.fileName, start, length: entry.compressedSize });
      zip.readEntry();
    });
    zip.on('end', () => ok());
    zip.on('error', fail);
    zip.readEntry();
  });
  zip.close();
  return out;
}
