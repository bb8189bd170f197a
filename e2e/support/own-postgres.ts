import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A PostgreSQL cluster of this test's own (initdb into a temporary folder, a free port). */
export interface OwnPostgres {
  url: string;
  start(): Promise<void>;
  /** `pg_ctl stop -m fast`: connections are cut, the server goes away. */
  stop(): Promise<void>;
  /** `pg_ctl restart -m fast`. */
  restart(): Promise<void>;
  /** Stops it for good and removes its folder. */
  remove(): Promise<void>;
}

function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'initdb'))) return join(root, v, 'bin');
  return undefined;
}

/** Why no cluster of our own can be made here, or undefined when it can. */
export function missingOwnPostgres(): string | undefined {
  if (!binDir()) return "Debian's PostgreSQL server (/usr/lib/postgresql/*/bin/initdb)";
  if (userInfo().uid === 0 && !existsSync('/usr/sbin/runuser'))
    return 'runuser (initdb refuses to run as root)';
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function ownPostgres(): Promise<OwnPostgres> {
  const bin = binDir()!;
  const dir = await mkdtemp(join(tmpdir(), 'clp-own-pg-'));
  const data = join(dir, 'data');
  const asRoot = userInfo().uid === 0;
  // initdb and postgres refuse root: run them as the postgres user.
  const as = (cmd: string, args: string[]) =>
    asRoot ? run('/usr/sbin/runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args);
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  await as(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
  const ctl = (action: string, ...extra: string[]) =>
    as(join(bin, 'pg_ctl'), [
      '-D',
      data,
      '-l',
      join(dir, 'log'),
      '-o',
      options,
      '-w',
      '-t',
      '60',
      ...extra,
      action,
    ]);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start: async () => void (await ctl('start')),
    stop: async () => void (await ctl('stop', '-m', 'fast')),
    restart: async () => void (await ctl('restart', '-m', 'fast')),
    async remove() {
      await ctl('stop', '-m', 'immediate').catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
