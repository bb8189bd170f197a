/**
 * The agent's own state under a root (agent.json, the release ledger, the update lock, the report
 * spool and the downloads in it) is never reached through a link: clpctl runs as root, and a link
 * planted in a crafted root would make it write outside the root, read a file from outside and
 * send it to the server, or delete a folder's content outside. Each case plants a link to a
 * sentinel folder outside the root and checks the coded refusal naming the path, and that
 * nothing in the sentinel was read into the result, written, chmod'ed or deleted (content, mode,
 * mtime and ctime are compared).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, loadConfig, saveConfig } from '../src/fleet/config.ts';
import { downloadRelease, pruneDownloads } from '../src/fleet/download.ts';
import type { AgentHttpClient } from '../src/fleet/http-client.ts';
import { readMachineFacts, readMachineId } from '../src/fleet/machine-facts.ts';
import { ReleaseLedger } from '../src/fleet/release-ledger.ts';
import { ReportSpool } from '../src/fleet/spool.ts';
import { acquireUpdateLock } from '../src/fleet/update-lock.ts';
import { newRoot, removeAll, tempDir } from './fleet-harness.ts';

const CLPCTL = join(import.meta.dirname, '../dist/clpctl.mjs');

const REPORT = {
  id: '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b',
  name: 'CLP1260301',
  status: 'applied',
  at: '2026-11-30T12:00:00.000Z',
};

/** Everything a write, a chmod, a chown or a delete would change, for each path under dir. */
async function state(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    const path = rel === '' ? dir : join(dir, rel);
    const st = await lstat(path);
    const id = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} m${st.mtimeMs} c${st.ctimeMs}`;
    if (st.isDirectory()) {
      const names = (await readdir(path)).sort();
      out[rel || '.'] = `dir ${id} [${names.join(',')}]`;
      for (const name of names) await walk(rel === '' ? name : `${rel}/${name}`);
    } else {
      const sum = createHash('sha256')
        .update(await readFile(path))
        .digest('hex');
      out[rel] = `file ${sum} ${id}`;
    }
  };
  await walk('');
  return out;
}

/** A client that fails the test if anything reaches the network. */
const offline = {
  servers: ['http://127.0.0.1:9'],
  http: { retries: 0, timeoutMs: 100, backoffMs: 0, backoffMaxMs: 0, maxRetryAfterMs: 0 },
  log() {},
  get streamGot(): never {
    throw new Error('the download went to the network instead of refusing the link');
  },
} as unknown as AgentHttpClient;

describe("links at the agent's own state never lead it outside the root", () => {
  let work: string;
  let outside: string;
  let before: Record<string, string>;
  const sha = 'a'.repeat(64);

  beforeAll(async () => {
    work = await tempDir('clp-fleet-links-');
  });
  afterAll(async () => {
    await removeAll(work);
  });

  /** A sentinel folder outside every root: a config with a credential, a report, files of a "download folder". */
  async function sentinel(): Promise<void> {
    outside = await mkdtemp(join(work, 'outside-'));
    await writeFile(
      join(outside, 'agent.json'),
      JSON.stringify({ ...defaultConfig(), credential: 'clp_mch_outside', machineId: 'outside-1' }),
    );
    await writeFile(join(outside, 'releases.json'), '{"version":1,"releases":[]}\n');
    await writeFile(join(outside, `000000000000001-${REPORT.id}.json`), `${JSON.stringify(REPORT)}\n`);
    await writeFile(join(outside, `${sha}.clp.part`), 'partial\n');
    await mkdir(join(outside, 'keep'));
    await writeFile(join(outside, 'keep/data'), 'keep me\n');
    before = await state(outside);
  }

  async function untouched(): Promise<void> {
    expect(await state(outside)).toEqual(before);
  }

  async function refused(p: Promise<unknown>, path: string): Promise<void> {
    const error = (await p.then(
      () => null,
      (e: unknown) => e,
    )) as { code?: string; message?: string } | null;
    expect(error, 'the call went through the link').not.toBeNull();
    expect(error?.code, error?.message).toBe('CLP_E_LINK_REFUSED');
    expect(error?.message).toContain(path);
  }

  it('agent.json as a link to a file outside is neither read nor replaced; ROOT/etc/clp as a link out gets no agent.json', async () => {
    await sentinel();
    const root = await newRoot();
    const file = join(root, 'etc/clp/agent.json');
    await symlink(join(outside, 'agent.json'), file);
    await refused(loadConfig(root), file);
    await refused(saveConfig(root, defaultConfig()), file);
    // clpctl says it with the safety exit code, one coded line and no stack trace.
    const r = spawnSync(process.execPath, [CLPCTL, '--root', root, 'config', 'set', 'mode', 'off'], {
      encoding: 'utf8',
    });
    expect(r.stderr).toMatch(/^error CLP_E_LINK_REFUSED: .*etc\/clp\/agent\.json/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.status).toBe(12);

    const other = await newRoot();
    await rename(join(other, 'etc/clp'), join(work, `moved-clp-${Date.now()}`));
    await symlink(outside, join(other, 'etc/clp'));
    await refused(saveConfig(other, defaultConfig()), join(other, 'etc/clp'));
    await refused(loadConfig(other), join(other, 'etc/clp'));
    await untouched();
  });

  it('the release ledger and the update lock refuse a link at their file and at ROOT/var/lib/clp/fleet', async () => {
    await sentinel();
    const root = await newRoot();
    await mkdir(join(root, 'var/lib/clp/fleet'), { recursive: true });
    const ledger = join(root, 'var/lib/clp/fleet/releases.json');
    await symlink(join(outside, 'releases.json'), ledger);
    await refused(ReleaseLedger.load(root), ledger);
    const lock = join(root, 'var/lib/clp/fleet/update.lock');
    await symlink(join(outside, 'keep/data'), lock);
    await refused(acquireUpdateLock(root, lock), lock);

    const other = await newRoot();
    await mkdir(join(other, 'var/lib/clp'), { recursive: true });
    await symlink(outside, join(other, 'var/lib/clp/fleet'));
    await refused(ReleaseLedger.load(other), join(other, 'var/lib/clp/fleet'));
    await refused(
      acquireUpdateLock(other, join(other, 'var/lib/clp/fleet/update.lock')),
      join(other, 'var/lib/clp/fleet'),
    );
    await untouched();
  });

  it('a ledger loaded before its folder became a link writes nothing through it', async () => {
    await sentinel();
    const root = await newRoot();
    const ledger = await ReleaseLedger.load(root);
    await mkdir(join(root, 'var/lib/clp'), { recursive: true });
    await symlink(outside, join(root, 'var/lib/clp/fleet'));
    await refused(
      ledger.put({
        name: 'CLP1260301',
        series: 'CLP126',
        sha256: sha,
        releaseId: 'r1',
        rolloutId: null,
        state: 'applied',
        at: REPORT.at,
      }),
      join(root, 'var/lib/clp/fleet'),
    );
    await untouched();
  });

  it('a spool folder that is a link out is neither read (nothing to send) nor written; a spooled report that is a link is not read', async () => {
    await sentinel();
    const root = await newRoot();
    await mkdir(join(root, 'var/lib/clp'), { recursive: true });
    const dir = join(root, 'var/lib/clp/spool');
    await symlink(outside, dir);
    const spool = new ReportSpool(root, dir);
    await refused(spool.pending(), dir);
    await refused(spool.add({ name: 'CLP1260301', status: 'skipped' }), dir);

    const other = await newRoot();
    const real = new ReportSpool(other, join(other, 'var/lib/clp/spool'));
    await real.add({ name: 'CLP1260302', status: 'skipped' });
    const link = join(real.dir, `000000000000001-${REPORT.id}.json`);
    await symlink(join(outside, `000000000000001-${REPORT.id}.json`), link);
    await refused(real.pending(), link);
    await untouched();
  });

  it('a download folder that is a link out is not pruned, and a download never appends to or hashes a file through a link', async () => {
    await sentinel();
    const root = await newRoot();
    const spool = join(root, 'var/lib/clp/spool');
    await mkdir(spool, { recursive: true });
    const dir = join(spool, 'downloads');
    await symlink(outside, dir);
    await refused(
      pruneDownloads(root, dir, new Set(), () => {}),
      dir,
    );
    const release = { name: 'CLP1260301', sha256: sha, size: 100, url: `/v1/blobs/${sha}` };
    await refused(downloadRelease({ client: offline, release, dir, root }), dir);

    const other = await newRoot();
    const real = join(other, 'var/lib/clp/spool/downloads');
    await mkdir(real, { recursive: true });
    await symlink(join(outside, `${sha}.clp.part`), join(real, `${sha}.clp.part`));
    await refused(downloadRelease({ client: offline, release, dir: real, root: other }), `${sha}.clp.part`);
    await rename(join(real, `${sha}.clp.part`), join(real, `${sha}.clp`));
    await refused(downloadRelease({ client: offline, release, dir: real, root: other }), `${sha}.clp`);
    await untouched();
  });

  it('machine facts follow links the way a chroot would: a host file outside the root is never read and sent as the hostname', async () => {
    await sentinel();
    await writeFile(join(outside, 'host-secret'), 'root-only-secret-line\n');
    await writeFile(join(outside, 'machine-id'), 'outsidemachine0001\n');
    before = await state(outside);
    const root = await newRoot();
    await rm(join(root, 'etc/hostname'));
    await symlink(join(outside, 'host-secret'), join(root, 'etc/hostname'));
    await symlink(join(outside, 'machine-id'), join(root, 'etc/machine-id'));
    // os-release as distributions ship it: a relative link into /usr/lib, and an absolute one.
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await rename(join(root, 'etc/os-release'), join(root, 'usr/lib/os-release'));
    await symlink('../usr/lib/os-release', join(root, 'etc/os-release'));
    const facts = await readMachineFacts(root);
    expect(facts.hostname).toBe(hostname().slice(0, 253));
    expect(JSON.stringify(facts)).not.toContain('secret');
    expect(facts.os).toEqual({ id: 'vincent', version: '2025.11' });
    expect(await readMachineId(root)).toMatchObject({ generated: true });
    await rm(join(root, 'etc/os-release'));
    await symlink('/usr/lib/os-release', join(root, 'etc/os-release'));
    // The absolute link starts again at the root: the root's os-release, not this host's.
    expect((await readMachineFacts(root)).os.id).toBe('vincent');
    await rm(join(root, 'etc/hostname'));
    await writeFile(join(root, 'etc/hostname.real'), 'inside-name\n');
    await symlink('/etc/hostname.real', join(root, 'etc/hostname'));
    expect((await readMachineFacts(root)).hostname).toBe('inside-name');
    await untouched();
  });
});
