import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectPatchDir, isClpError, openPatch, writePatch } from '../src/index.ts';
import { PAYLOAD, PAYLOAD_NAME, sha256, xmlMeta } from './crafted.ts';

const EXAMPLES = join(import.meta.dirname, '../../../examples');
const hasUnzip = spawnSync('unzip', ['-v']).status === 0;
const hasMkfifo = spawnSync('mkfifo', ['--version']).status === 0;

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clp-write-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function caught(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a rejection, but the promise resolved');
}

describe('writePatch', () => {
  it('writes a zip that openPatch reads back, with content, modes and compression as asked', async () => {
    const script = join(dir, 'post.sh');
    await writeFile(script, '#!/bin/sh\necho done\n');
    const pkg = Buffer.alloc(200_000, 0x61);
    const file = join(dir, 'out.clp');
    await writePatch(file, [
      {
        name: 'PKGINFO.meta',
        data: Buffer.from(xmlMeta({ actions: `<Script when="post" path="scripts/post.sh"/>` })),
      },
      { name: PAYLOAD_NAME, data: PAYLOAD, mode: 0o600 },
      { name: 'scripts/post.sh', file: script, mode: 0o755 },
      { name: 'payload/tool.pkg.tar.zst', data: pkg },
    ]);
    const archive = await openPatch(file);
    try {
      expect(archive.kind).toBe('zip');
      expect(archive.entries.map((e) => e.name)).toEqual([
        'PKGINFO.meta',
        PAYLOAD_NAME,
        'scripts/post.sh',
        'payload/tool.pkg.tar.zst',
      ]);
      const byName = new Map(archive.entries.map((e) => [e.name, e]));
      expect(byName.get(PAYLOAD_NAME)?.mode).toBe(0o600);
      expect(byName.get('scripts/post.sh')?.mode).toBe(0o755);
      // Package files are already compressed: stored, not deflated again.
      expect(byName.get('payload/tool.pkg.tar.zst')?.compressedSize).toBe(pkg.length);
      expect(await archive.readEntry('scripts/post.sh', 1024)).toEqual(await readFile(script));
      const digests = await archive.hashEntries();
      expect(digests.get('payload/tool.pkg.tar.zst')).toEqual({ sha256: sha256(pkg), size: pkg.length });
      expect(archive.meta.actions).toEqual([{ type: 'script', when: 'post', path: 'scripts/post.sh' }]);
    } finally {
      await archive.close();
    }
  });

  it('gives the same bytes for the same input (fixed timestamps)', async () => {
    const entries = [
      { name: 'PKGINFO.meta', data: Buffer.from(xmlMeta()) },
      { name: PAYLOAD_NAME, data: PAYLOAD },
    ];
    await writePatch(join(dir, 'a.clp'), entries);
    await writePatch(join(dir, 'b.clp'), entries);
    const a = await readFile(join(dir, 'a.clp'));
    expect(a).toEqual(await readFile(join(dir, 'b.clp')));
    // The timestamp is a fixed one (2020), not the clock's, so a later run gives the same bytes too.
    const dosDate = a.readUInt16LE(12);
    expect(1980 + (dosDate >> 9)).toBeLessThanOrEqual(2020);
  });

  it.skipIf(!hasUnzip)('writes a zip that Info-ZIP unzip tests clean', async () => {
    const file = join(dir, 'out.clp');
    await writePatch(file, [
      { name: 'PKGINFO.meta', data: Buffer.from(xmlMeta()) },
      { name: PAYLOAD_NAME, data: PAYLOAD },
    ]);
    const out = execFileSync('unzip', ['-t', file], { encoding: 'utf8' });
    expect(out).toContain('No errors detected');
  });
  if (!hasUnzip) console.warn('skipped: needs unzip for the interoperability check');

  it.each([
    ['../evil', 'CLP_E_PATH_TRAVERSAL'],
    ['/etc/passwd', 'CLP_E_ABSOLUTE_PATH'],
    ['payload\\x', 'CLP_E_BAD_PATH'],
    ['payload/', 'CLP_E_BAD_PATH'],
    ['a/./b', 'CLP_E_BAD_PATH'],
  ])('refuses the entry name %j with %s and writes nothing', async (name, code) => {
    const file = join(dir, 'out.clp');
    const error = await caught(
      writePatch(file, [
        { name: 'PKGINFO.meta', data: Buffer.from(xmlMeta()) },
        { name, data: PAYLOAD },
      ]),
    );
    expect(error).toMatchObject({ code });
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses the same name twice with CLP_E_DUPLICATE_ENTRY and writes nothing', async () => {
    const file = join(dir, 'out.clp');
    const error = await caught(
      writePatch(file, [
        { name: PAYLOAD_NAME, data: PAYLOAD },
        { name: PAYLOAD_NAME, data: Buffer.from('other') },
      ]),
    );
    expect(error).toMatchObject({ code: 'CLP_E_DUPLICATE_ENTRY' });
    expect(error.message).toContain(PAYLOAD_NAME);
    expect(await readdir(dir)).toEqual([]);
  });

  it('leaves an existing archive untouched and no temporary file behind when a source is missing', async () => {
    const file = join(dir, 'out.clp');
    await writeFile(file, 'previous archive');
    // A source that vanished between listing and writing must fail the write, not hang it.
    const error = await caught(
      Promise.race([
        writePatch(file, [
          { name: 'PKGINFO.meta', data: Buffer.from(xmlMeta()) },
          { name: PAYLOAD_NAME, file: join(dir, 'does-not-exist') },
        ]),
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error('writePatch did not settle within 5 s')), 5_000),
        ),
      ]),
    );
    expect(error.message).not.toContain('did not settle');
    expect(error).toMatchObject({ code: 'CLP_E_NOT_FOUND' });
    expect(error.message).toContain(join(dir, 'does-not-exist'));
    expect(await readFile(file, 'utf8')).toBe('previous archive');
    expect(await readdir(dir)).toEqual(['out.clp']);
  });

  it('can write over one of its own inputs', async () => {
    const file = join(dir, 'inner.clp');
    await writeFile(file, 'old bytes');
    await writePatch(file, [
      { name: 'PKGINFO.meta', data: Buffer.from(xmlMeta({ source: 'payload/inner.clp' })) },
      { name: 'payload/inner.clp', file },
    ]);
    const archive = await openPatch(file);
    try {
      expect((await archive.readEntry('payload/inner.clp', 100)).toString()).toBe('old bytes');
    } finally {
      await archive.close();
    }
  });
});

describe('collectPatchDir', () => {
  it('lists the declarative example, sorted, with sizes', async () => {
    const files = await collectPatchDir(join(EXAMPLES, 'CLP1251123'));
    expect(files.map((f) => f.name)).toEqual(['PKGINFO.meta', 'payload/clp-demo.conf', 'payload/motd']);
    for (const f of files) expect(f.size).toBe((await stat(f.file)).size);
  });

  it('round-trips both examples through writePatch and openPatch with every sha256 in PKGINFO.meta honoured', async () => {
    for (const [folder, dialect] of [
      ['CLP1251123', 'xml'],
      ['CLP1250101-historic', 'ini'],
    ] as const) {
      const files = await collectPatchDir(join(EXAMPLES, folder));
      const file = join(dir, `${folder}.clp`);
      await writePatch(file, files);
      const archive = await openPatch(file);
      try {
        expect(archive.meta.dialect).toBe(dialect);
        const digests = await archive.hashEntries();
        for (const f of files) expect(digests.get(f.name)?.sha256).toBe(sha256(await readFile(f.file)));
        for (const action of archive.meta.actions) {
          if (action.type === 'file' && action.source && action.sha256)
            expect(digests.get(action.source)?.sha256).toBe(action.sha256);
        }
        if (dialect === 'ini') expect(archive.meta.installScript).toBe('Install-Patch.ps1');
      } finally {
        await archive.close();
      }
    }
  });

  it('refuses a symbolic link in the folder with CLP_E_SOURCE_DIR naming it', async () => {
    await mkdir(join(dir, 'src', 'payload'), { recursive: true });
    await writeFile(join(dir, 'src', 'PKGINFO.meta'), xmlMeta());
    await symlink('/etc/passwd', join(dir, 'src', 'payload', 'passwd'));
    const error = await caught(collectPatchDir(join(dir, 'src')));
    expect(error).toMatchObject({ code: 'CLP_E_SOURCE_DIR' });
    expect(error.message).toContain('payload/passwd');
  });

  if (!hasMkfifo) console.warn('skipped: needs mkfifo for the fifo check');
  it.skipIf(!hasMkfifo)('refuses a fifo in the folder with CLP_E_SOURCE_DIR', async () => {
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    const error = await caught(collectPatchDir(dir));
    expect(error).toMatchObject({ code: 'CLP_E_SOURCE_DIR' });
  });

  it('refuses a file or a missing path with CLP_E_SOURCE_DIR', async () => {
    await writeFile(join(dir, 'file'), 'x');
    for (const path of [join(dir, 'file'), join(dir, 'missing')]) {
      const error = await caught(collectPatchDir(path));
      expect(isClpError(error)).toBe(true);
      expect(error).toMatchObject({ code: 'CLP_E_SOURCE_DIR' });
      expect(error.message).toContain(path);
    }
  });
});
