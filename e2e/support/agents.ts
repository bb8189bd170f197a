import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { CLPCTL, NODE } from './paths.ts';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `clpctl ARGS` as its own process with the repo's Node. */
export function clpctl(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      NODE,
      [CLPCTL, ...args],
      {
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, NO_COLOR: '1' },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs clpctl and fails with its output when the exit code is not the expected one. */
export async function clpctlOk(args: readonly string[], expected = 0): Promise<RunResult> {
  const r = await clpctl(args);
  if (r.code !== expected) {
    throw new Error(
      `clpctl ${args.join(' ')} exited ${r.code} (expected ${expected})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
    );
  }
  return r;
}

export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/** The motd the test patch expects (the demo root's). */
export const GOOD_MOTD = 'Welcome to Vincent OS.\n';
export const OTHER_MOTD = 'Welcome to a machine someone edited by hand.\n';

/** One machine: a temporary root with os-release, hostname, machine-id, a motd and the release key. */
export class Machine {
  readonly name: string;
  readonly root: string;
  machineId = '';

  constructor(name: string, root: string) {
    this.name = name;
    this.root = root;
  }

  static async create(name: string, pubKey: string, motd = GOOD_MOTD): Promise<Machine> {
    const root = await mkdtemp(join(tmpdir(), `clp-e2e-${name}-`));
    const m = new Machine(name, root);
    await mkdir(join(root, 'etc', 'clp', 'keys.d'), { recursive: true });
    await copyFile(pubKey, join(root, 'etc', 'clp', 'keys.d', basename(pubKey)));
    await writeFile(join(root, 'etc', 'os-release'), 'NAME="Vincent OS"\nID=vincent\nVERSION_ID=2025.11\n');
    await writeFile(join(root, 'etc', 'hostname'), `${name}\n`);
    await writeFile(join(root, 'etc', 'machine-id'), `${randomBytes(16).toString('hex')}\n`);
    await m.setMotd(motd);
    return m;
  }

  async remove(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }

  async setMotd(text: string): Promise<void> {
    await writeFile(join(this.root, 'etc', 'motd'), text);
  }

  async read(path: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.root, path), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  run(args: readonly string[], timeoutMs?: number): Promise<RunResult> {
    return clpctl(['--root', this.root, ...args], timeoutMs === undefined ? {} : { timeoutMs });
  }

  async enroll(url: string, token: string): Promise<void> {
    const r = await this.run(['--json', 'enroll', url, token]);
    if (r.code !== 0) throw new Error(`${this.name}: enroll exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    const file = join(this.root, 'etc', 'clp', 'agent.json');
    // It holds the machine's credential: readable by root only.
    const mode = (await stat(file)).mode & 0o777;
    if (mode !== 0o600) throw new Error(`${this.name}: ${file} has mode ${mode.toString(8)}, expected 600`);
    const config = JSON.parse(await readFile(file, 'utf8')) as { machineId: string };
    this.machineId = config.machineId;
  }

  /** Short network time limits so that retries and fallbacks happen within the test. */
  async fastNetwork(): Promise<void> {
    for (const [key, value] of [
      ['http.timeoutMs', '2000'],
      ['http.retries', '3'],
      ['http.backoffMs', '100'],
      ['http.backoffMaxMs', '400'],
    ] as const) {
      const r = await this.run(['config', 'set', key, value]);
      if (r.code !== 0)
        throw new Error(`${this.name}: config set ${key} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    }
  }

  update(timeoutMs = 60_000): Promise<RunResult> {
    return this.run(['--json', 'update'], timeoutMs);
  }
}

/**
 * A signing key and a signed patch built with clpctl: it adds /etc/clp-e2e.conf and /opt/clp-e2e/blob.bin
 * (random bytes, so a download has something to cut) and replaces /etc/motd only where the motd is
 * exactly GOOD_MOTD (expect-sha256): machines with another motd fail the precondition.
 */
export async function buildRelease(
  name: string,
  blobBytes = 512 * 1024,
): Promise<{
  /** Temporary folder holding the key pair, the patch folder and the .clp. */
  dir: string;
  file: string;
  pub: string;
  key: string;
  bytes: Buffer;
  conf: string;
  blob: Buffer;
  newMotd: string;
}> {
  const dir = await mkdtemp(join(tmpdir(), 'clp-e2e-release-'));
  await clpctlOk(['keygen', '--name', 'e2e-release', '--out', dir]);
  const key = join(dir, 'e2e-release.key');
  const pub = join(dir, 'e2e-release.pub');
  const src = join(dir, name);
  await mkdir(join(src, 'payload'), { recursive: true });
  const conf = `# written by ${name}\nenabled = true\n`;
  const blob = randomBytes(blobBytes);
  const newMotd = `Welcome to Vincent OS (patched by ${name}).\n`;
  await writeFile(join(src, 'payload', 'clp-e2e.conf'), conf);
  await writeFile(join(src, 'payload', 'blob.bin'), blob);
  await writeFile(join(src, 'payload', 'motd'), newMotd);
  await writeFile(
    join(src, 'PKGINFO.meta'),
    `<?xml version="1.0" encoding="UTF-8"?>
<Package>
  <Name>${name}</Name>
  <Version>1</Version>
  <Architecture>any</Architecture>
  <Description>End-to-end test patch</Description>
  <Actions>
    <File action="add" path="/etc/clp-e2e.conf" source="payload/clp-e2e.conf" sha256="${sha256(conf)}" mode="0644"/>
    <File action="add" path="/opt/clp-e2e/blob.bin" source="payload/blob.bin" sha256="${sha256(blob)}" mode="0644"/>
    <File action="replace" path="/etc/motd" source="payload/motd" expect-sha256="${sha256(GOOD_MOTD)}" sha256="${sha256(newMotd)}" mode="0644"/>
  </Actions>
</Package>
`,
  );
  const file = join(dir, `${name}.clp`);
  await clpctlOk(['create', src, '-o', file, '--sign', key]);
  return { dir, file, pub, key, bytes: await readFile(file), conf, blob, newMotd };
}

/** The documented cohort rule (docs/rollouts.md): bucket = first 4 bytes of sha256(rollout id NUL machine id) mod 10000. */
export function cohortBucket(machineId: string, rolloutId: string): number {
  return (
    createHash('sha256').update(`${rolloutId}\u0000${machineId}`, 'utf8').digest().readUInt32BE(0) % 10_000
  );
}

export const inStage = (bucket: number, percent: number): boolean => bucket < Math.round(percent * 100);
