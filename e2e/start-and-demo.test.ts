import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { missingBuild, NODE, REPO } from './support/paths.ts';

/*
 * What `bash scripts/start.sh` does for a newcomer: npm ci only when node_modules is not from
 * this lock file, then the demo (`npm start -- --once` is `node scripts/demo.mjs --once` after the
 * build), whose output is read as a person reads it.
 */

const missing = missingBuild();
if (missing) console.warn(`skipped: needs ${missing}`);

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => done(port));
    });
  });
}

function demo(dataDir: string, port: number): Promise<{ code: number | null; out: string }> {
  return new Promise((done) => {
    const child = spawn(NODE, [join(REPO, 'scripts/demo.mjs'), '--once'], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', HOME: dataDir, CLP_DATA_DIR: dataDir, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d;
    });
    child.on('close', (code) => done({ code, out }));
  });
}

describe('scripts/npm-ci-if-needed.sh', () => {
  it('runs npm ci once for a lock file, skips it while node_modules comes from that lock file, and runs it again after a change', async () => {
    const repo = await mkdtemp(join(tmpdir(), 'clp-start-'));
    dirs.push(repo);
    await mkdir(join(repo, 'scripts'));
    await mkdir(join(repo, 'bin'));
    await writeFile(
      join(repo, 'scripts/npm-ci-if-needed.sh'),
      await readFile(join(REPO, 'scripts/npm-ci-if-needed.sh')),
    );
    await writeFile(join(repo, 'package-lock.json'), '{"lockfileVersion":3}\n');
    // A stand-in for npm that does what npm ci does to node_modules, and counts its runs.
    await writeFile(
      join(repo, 'bin/npm'),
      '#!/bin/sh\necho "$@" >> npm-calls\nrm -rf node_modules && mkdir -p node_modules/.bin && printf "#!/bin/sh\\n" > node_modules/.bin/node && chmod +x node_modules/.bin/node\n',
    );
    await chmod(join(repo, 'bin/npm'), 0o755);
    const run = () => {
      const r = spawnSync('bash', [join(repo, 'scripts/npm-ci-if-needed.sh')], {
        cwd: repo,
        encoding: 'utf8',
        env: { PATH: `${join(repo, 'bin')}:${process.env.PATH ?? ''}` },
      });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    const calls = async () => (await readFile(join(repo, 'npm-calls'), 'utf8')).trim().split('\n').length;
    run();
    expect(await calls()).toBe(1);
    expect(run()).toContain('node_modules matches package-lock.json: npm ci skipped');
    expect(await calls()).toBe(1);
    // A system Node other than 24 runs npm ci: its EBADENGINE warning is said to be expected.
    await writeFile(join(repo, 'bin/node'), '#!/bin/sh\necho v20.20.2\n');
    await chmod(join(repo, 'bin/node'), 0o755);
    await writeFile(join(repo, 'package-lock.json'), '{"lockfileVersion":3,"packages":{}}\n');
    expect(run()).toContain(
      "npm ci runs on this system's Node (v20.20.2); the project then runs on the Node 24 it installs",
    );
    expect(await calls()).toBe(2);
    expect(await readFile(join(repo, 'npm-calls'), 'utf8')).toMatch(/^ci --no-audit --no-fund$/m);
  });
});

describe.skipIf(missing !== undefined)('the demo behind npm start', () => {
  it('walks through without stray indentation, ends with both machines shown patched, and a second --once says it ran already', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'clp-demo-'));
    dirs.push(dataDir);
    const port = await freePort();
    const first = await demo(dataDir, port);
    expect(first.code, first.out).toBe(0);
    // Its output is a pipe here, not a terminal: plain text, no escape codes for bold headings.
    expect(first.out).not.toContain('\x1b');
    const lines = first.out.split('\n');
    // Every command at the start of its line; no line of spaces only.
    expect(lines.filter((l) => /^\s+\$ clpctl /.test(l))).toEqual([]);
    expect(lines.filter((l) => /^\s+$/.test(l))).toEqual([]);
    expect(lines.filter((l) => l.startsWith('$ clpctl ')).length).toBeGreaterThan(10);
    // The last step lists both machines with the patch installed.
    const steps = lines.filter((l) => l.startsWith('== '));
    expect(steps.at(-1)).toBe('== the server shows both machines patched, and every report they sent');
    const table = lines.slice(lines.indexOf('$ clpctl admin machines') + 1);
    expect(table[0]).toMatch(/^ {2}ID\s+HOSTNAME\s+TIER.*INSTALLED$/);
    expect(table.slice(1, 3).every((l) => /\sstable\s.*\sCLP1251123$/.test(l))).toBe(true);
    // Each stand-in machine under its own host name, not twice this host's.
    expect(
      table
        .slice(1, 3)
        .map((l) => l.split(/\s+/)[2])
        .sort(),
    ).toEqual(['machine-1', 'machine-2']);
    expect(table[3]).toBe('  2 of 2 machines');
    // It stopped its server: no advice to try commands against it.
    expect(first.out).not.toContain('Try next');
    expect(first.out).toContain('--once: the server is stopped again.');

    const second = await demo(dataDir, port);
    expect(second.code, second.out).toBe(0);
    expect(second.out).toMatch(/^The walk-through already ran on \S+ with the data in /);
    expect(second.out).toContain("'npm start -- --reset --once'");
    expect(second.out).not.toContain('Try next');
    expect(second.out).not.toContain('listening on');
  }, 300_000);
});
