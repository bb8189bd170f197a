import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openPatch } from '@clp/format';
import { loadPrivateKey, signPatch, writeKeyPair } from '@clp/trust';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTarGz,
  buildZip,
  PAYLOAD,
  PAYLOAD_NAME,
  S_IFLNK,
  STORE,
  validTarEntries,
  validZipEntries,
  xmlMeta,
  type ZipEntrySpec,
} from '../../../libs/format/test/crafted.ts';
import { drivers, type Running, start } from './harness.ts';

/**
 * Uploads through the real check (format library + trust store), with archives built byte by
 * byte: a hostile one must get a 4xx with the library's error code, and leave nothing behind.
 */

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe.each(drivers())('release uploads on $name', (driver) => {
  let s: Running;
  let work: string;
  let keysDir: string;
  let trusted: { keyFile: string; keyId: string };
  const good = new Map<string, Buffer>();

  /** Writes crafted entries to a file, signs it with `key` and returns the signed bytes. */
  async function signed(name: string, entries: ZipEntrySpec[], key = trusted): Promise<Buffer> {
    const raw = join(work, `${name}.raw.clp`);
    const out = join(work, `${name}.clp`);
    await writeFile(raw, buildZip(entries));
    await signPatch(raw, out, await loadPrivateKey(key.keyFile), 'release team');
    return readFile(out);
  }

  async function upload(body: Buffer, token = s.admin) {
    return s.call('POST', '/v1/releases', {
      token,
      body,
      headers: { 'content-type': 'application/octet-stream' },
    });
  }

  async function storedState() {
    const listed = await s.call('GET', '/v1/releases?limit=1000', { token: s.admin });
    const blobRoot = join(s.dataDir, 'blobs');
    const blobs = (await readdir(blobRoot, { recursive: true }))
      .filter((p) => /[0-9a-f]{64}$/.test(p))
      .sort();
    const temp = await readdir(join(blobRoot, 'tmp'));
    return { releases: listed.body.releases.length as number, blobs, temp };
  }

  beforeAll(async () => {
    s = await start({ driver });
    work = join(s.dataDir, 'work');
    keysDir = s.server.context.config.trustedKeysDir;
    await mkdir(work, { recursive: true });
    const pair = await writeKeyPair(join(work, 'keys'), 'release-2026');
    await mkdir(keysDir, { recursive: true });
    await writeFile(join(keysDir, 'release-2026.pub'), await readFile(pair.pubFile));
    trusted = pair;
    good.set('CLP1251123', await signed('CLP1251123', validZipEntries(xmlMeta({ name: 'CLP1251123' }))));
  });
  afterAll(async () => {
    await s?.close();
  });

  it('stores a signed release with its metadata from PKGINFO.meta, and answers 200 to the same bytes again', async () => {
    const bytes = good.get('CLP1251123')!;
    const res = await upload(bytes);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({
      id: sha256(bytes),
      sha256: sha256(bytes),
      name: 'CLP1251123',
      series: expect.any(String),
      version: '1',
      arch: 'any',
      size: bytes.length,
      signerKeyId: trusted.keyId,
      uploadedBy: 'bootstrap (admin)',
      yanked: false,
    });
    expect(res.body.meta.name).toBe('CLP1251123');
    const again = await upload(bytes);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(res.body.id);
    const blob = await fetch(`${s.url}/v1/blobs/${res.body.sha256}`);
    expect(sha256(Buffer.from(await blob.arrayBuffer()))).toBe(res.body.sha256);
  });

  it('lists, shows and yanks releases', async () => {
    const id = sha256(good.get('CLP1251123')!);
    const listed = await s.call('GET', '/v1/releases', { token: s.admin });
    expect(listed.body.releases.map((r: { id: string }) => r.id)).toContain(id);
    const shown = await s.call('GET', `/v1/releases/${id}`, { token: s.admin });
    expect(shown.body).toMatchObject({ id, name: 'CLP1251123', yanked: false });
    const yanked = await s.call('POST', `/v1/releases/${id}/yank`, {
      token: s.admin,
      json: { reason: 'test' },
    });
    expect(yanked.status).toBe(200);
    expect(yanked.body.yanked).toBe(true);
    expect(yanked.body.yankedAt).toEqual(expect.any(String));
    const onlyYanked = await s.call('GET', '/v1/releases?yanked=true', { token: s.admin });
    expect(onlyYanked.body.releases.map((r: { id: string }) => r.id)).toEqual([id]);
    const notYanked = await s.call('GET', '/v1/releases?yanked=false', { token: s.admin });
    expect(notYanked.body.releases.map((r: { id: string }) => r.id)).not.toContain(id);
    const rollout = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: { releaseId: id, tier: 'edge', stages: [{ percent: 100, minDurationSeconds: 0 }] },
    });
    expect(rollout.status).toBe(409);
    expect(rollout.body.error.code).toBe('CLP_E_RELEASE_YANKED');
    const missing = await s.call('GET', `/v1/releases/${'9'.repeat(64)}`, { token: s.admin });
    expect(missing.status).toBe(404);
  });

  it('refuses a different release under a name already stored with 409', async () => {
    const other = await signed('CLP1251123-other', [
      ...validZipEntries(xmlMeta({ name: 'CLP1251123' })),
      { name: 'payload/extra.txt', data: Buffer.from('another build') },
    ]);
    const res = await upload(other);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('CLP_E_CONFLICT');
  });

  it('lets only the release and admin roles upload', async () => {
    const viewer = await s.call('POST', '/v1/admin-tokens', {
      token: s.admin,
      json: { name: 'v', role: 'viewer' },
    });
    const operator = await s.call('POST', '/v1/admin-tokens', {
      token: s.admin,
      json: { name: 'o', role: 'operator' },
    });
    const release = await s.call('POST', '/v1/admin-tokens', {
      token: s.admin,
      json: { name: 'r', role: 'release' },
    });
    const bytes = await signed('CLP1251124', validZipEntries(xmlMeta({ name: 'CLP1251124' })));
    expect((await upload(bytes, viewer.body.token)).status).toBe(403);
    expect((await upload(bytes, operator.body.token)).status).toBe(403);
    const ok = await upload(bytes, release.body.token);
    expect(ok.status).toBe(201);
    expect(ok.body.uploadedBy).toBe('r (release)');
  });

  it('refuses an upload over the size limit with 413 and stores nothing', async () => {
    const before = await storedState();
    const config = s.server.context.config;
    const limit = config.maxUploadBytes;
    config.maxUploadBytes = 4096;
    try {
      const big = await signed('CLP1251125', [
        ...validZipEntries(xmlMeta({ name: 'CLP1251125' })),
        { name: 'payload/noise.bin', data: randomBytes(8192), method: STORE },
      ]);
      // Declared too large (Content-Length) and streamed too large (chunked, no length).
      const declared = await upload(big);
      expect(declared.status).toBe(413);
      expect(declared.body.error.code).toBe('CLP_E_UPLOAD_TOO_LARGE');
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < big.length; i += 1024) controller.enqueue(big.subarray(i, i + 1024));
          controller.close();
        },
      });
      const chunked = await fetch(`${s.url}/v1/releases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${s.admin}`, 'content-type': 'application/octet-stream' },
        body: stream,
        duplex: 'half',
      } as RequestInit);
      expect(chunked.status).toBe(413);
    } finally {
      config.maxUploadBytes = limit;
    }
    expect(await storedState()).toEqual(before);
  });

  const hostile: Array<[string, () => Promise<Buffer>, RegExp]> = [
    ['not a zip', async () => randomBytes(4096), /^CLP_E_NOT_AN_ARCHIVE$/],
    ['an empty body', async () => Buffer.alloc(0), /^CLP_E_(NOT_AN_ARCHIVE|TRUNCATED)$/],
    [
      'a path traversal entry',
      async () =>
        buildZip([
          ...validZipEntries(),
          { name: '../../../etc/cron.d/evil', data: Buffer.from('* * * * * root sh\n') },
        ]),
      /^CLP_E_PATH_TRAVERSAL$/,
    ],
    [
      'an absolute path entry',
      async () => buildZip([...validZipEntries(), { name: '/etc/passwd', data: Buffer.from('x') }]),
      /^CLP_E_(ABSOLUTE_PATH|PATH_TRAVERSAL)$/,
    ],
    [
      'a zip bomb (compression ratio far past the limit)',
      async () =>
        buildZip([...validZipEntries(), { name: 'payload/zeros.bin', data: Buffer.alloc(32 * 1024 * 1024) }]),
      /^CLP_E_ZIP_BOMB$/,
    ],
    [
      'an XML entity in PKGINFO.meta',
      async () =>
        buildZip(
          validZipEntries(
            xmlMeta().replace(
              '<?xml version="1.0" encoding="UTF-8"?>',
              '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE Package [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>',
            ),
          ),
        ),
      /^CLP_E_XML_(DTD|ENTITY)$/,
    ],
    [
      'a symbolic link entry',
      async () =>
        buildZip([
          ...validZipEntries(),
          { name: 'payload/passwd', data: Buffer.from('/etc/passwd'), method: STORE, mode: S_IFLNK | 0o777 },
        ]),
      /^CLP_E_LINK_ENTRY$/,
    ],
    [
      'a historic tar.gz with a symbolic link',
      async () =>
        buildTarGz([
          ...validTarEntries(),
          { name: 'Install-Patch.d/evil', type: 'symlink', linkname: '/etc/shadow' },
        ]),
      /^CLP_E_LINK_ENTRY$/,
    ],
    [
      'the same entry twice',
      async () =>
        buildZip([...validZipEntries(), { name: PAYLOAD_NAME, data: Buffer.from('PermitRootLogin yes\n') }]),
      /^CLP_E_DUPLICATE_ENTRY$/,
    ],
    [
      'an encrypted entry',
      async () =>
        buildZip([...validZipEntries(), { name: 'payload/secret', data: Buffer.from('x'), flags: 0x0801 }]),
      /^CLP_E_ENCRYPTED_ENTRY$/,
    ],
    [
      'a signed archive cut in half',
      async () => {
        const bytes = await signed('CLP1251205', validZipEntries(xmlMeta({ name: 'CLP1251205' })));
        return bytes.subarray(0, Math.floor(bytes.length / 2));
      },
      /^CLP_E_(TRUNCATED|NOT_AN_ARCHIVE)$/,
    ],
    [
      'PKGINFO.meta with a bad CRC',
      async () =>
        buildZip([
          { name: 'PKGINFO.meta', data: Buffer.from(xmlMeta()), crc: 0xdeadbeef },
          { name: PAYLOAD_NAME, data: PAYLOAD },
        ]),
      /^CLP_E_CORRUPT_ENTRY$/,
    ],
    ['an unsigned historic tar.gz', async () => buildTarGz(validTarEntries()), /^CLP_E_UNSIGNED$/],
    [
      'an unsigned archive',
      async () => buildZip(validZipEntries(xmlMeta({ name: 'CLP1251130' }))),
      /^CLP_E_UNSIGNED$/,
    ],
    [
      'an archive signed by an unknown key',
      async () => {
        const stranger = await writeKeyPair(
          join(work, 'stranger'),
          `stranger-${randomBytes(3).toString('hex')}`,
        );
        return signed('CLP1251201', validZipEntries(xmlMeta({ name: 'CLP1251201' })), stranger);
      },
      /^CLP_E_UNKNOWN_KEY$/,
    ],
    [
      'a tampered archive (signed, then an entry changed)',
      async () => {
        const bytes = await signed('CLP1251202', validZipEntries(xmlMeta({ name: 'CLP1251202' })));
        const file = join(work, 'tamper-source.clp');
        await writeFile(file, bytes);
        const archive = await openPatch(file);
        const signature = await archive.readEntry('SIGNATURE', 1 << 20);
        await archive.close();
        const meta = xmlMeta({ name: 'CLP1251202' }).replace(
          'crafted test patch',
          'crafted test patch, changed',
        );
        return buildZip([
          { name: 'PKGINFO.meta', data: Buffer.from(meta) },
          { name: PAYLOAD_NAME, data: PAYLOAD },
          { name: 'SIGNATURE', data: signature },
        ]);
      },
      /^CLP_E_(MANIFEST_MISMATCH|SIGNATURE_INVALID)$/,
    ],
  ];

  it.each(hostile)('refuses %s with 4xx and its error code, storing nothing', async (_what, make, code) => {
    const before = await storedState();
    const res = await upload(await make());
    expect(res.status, JSON.stringify(res.body)).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body.error.code).toMatch(code);
    expect(res.body.error.message.length).toBeGreaterThan(10);
    expect(res.body.error.message).not.toMatch(/upload-[0-9a-f-]{36}/);
    expect(await storedState()).toEqual(before);
  });

  it('refuses a release signed by a key revoked since, without a restart', async () => {
    const bytes = await signed('CLP1251203', validZipEntries(xmlMeta({ name: 'CLP1251203' })));
    await appendFile(join(keysDir, 'revoked'), `${trusted.keyId}\n`);
    try {
      const res = await upload(bytes);
      expect(res.status).toBe(422);
      expect(res.body.error.code).toBe('CLP_E_REVOKED_KEY');
    } finally {
      await writeFile(join(keysDir, 'revoked'), '');
    }
    // A key added to the folder is trusted at the next upload.
    const added = await writeKeyPair(join(work, 'keys'), 'added-later');
    const later = await signed('CLP1251204', validZipEntries(xmlMeta({ name: 'CLP1251204' })), added);
    const unknown = await upload(later);
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.code).toBe('CLP_E_UNKNOWN_KEY');
    await writeFile(join(keysDir, 'added-later.pub'), await readFile(added.pubFile));
    const accepted = await upload(later);
    expect(accepted.status).toBe(201);
    expect(accepted.body.signerKeyId).toBe(added.keyId);
  });

  it("refuses a release signed by an untrusted key without showing the server's key folder", async () => {
    const stranger = await writeKeyPair(join(work, 'keys'), 'stranger');
    const bytes = await signed('CLP1251205', validZipEntries(xmlMeta({ name: 'CLP1251205' })), stranger);
    const res = await upload(bytes);
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('CLP_E_UNKNOWN_KEY');
    expect(res.body.error.message).toContain(stranger.keyId);
    expect(res.body.error.message).toContain("the server's trusted keys folder");
    expect(res.body.error.message).not.toContain(keysDir);
    expect(res.body.error.message).not.toContain(s.dataDir);
  });

  it.each(['application/octet-streamx', 'application/octet-stream-x; charset=binary', 'text/plain'])(
    'refuses an upload sent as %s with 415',
    async (type) => {
      const res = await s.call('POST', '/v1/releases', {
        token: s.admin,
        body: Buffer.from('not looked at'),
        headers: { 'content-type': type },
      });
      expect(res.status).toBe(415);
      expect(res.body.error.code).toBe('CLP_E_UNSUPPORTED_MEDIA_TYPE');
    },
  );

  it('takes an upload whose content type carries parameters or capitals', async () => {
    const bytes = await signed('CLP1251206', validZipEntries(xmlMeta({ name: 'CLP1251206' })));
    const res = await s.call('POST', '/v1/releases', {
      token: s.admin,
      body: bytes,
      headers: { 'content-type': 'Application/Octet-Stream; charset=binary' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  });
});
