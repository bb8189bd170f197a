import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './paths.ts';

/** nginx (Debian's) in front of server processes, with the deployable deploy/nginx/clp-locations.conf. */
export interface NginxFront {
  url: string;
  stop(): Promise<void>;
}

export function missingNginx(): string | undefined {
  return spawnSync('nginx', ['-v']).status === 0 ? undefined : 'nginx (scripts/install-system-deps.sh)';
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

/**
 * Starts nginx on a free loopback port, balancing over `upstreams` (http://host:port URLs) and
 * caching /v1/blobs/ exactly as the compose deployment does: only the http-level frame (paths,
 * port, upstream addresses) differs from deploy/nginx/nginx.conf.
 */
export async function startNginxFront(upstreams: string[], workers = 1): Promise<NginxFront> {
  const prefix = await mkdtemp(join(tmpdir(), 'clp-nginx-front-'));
  for (const d of ['tmp', 'logs', 'cache']) await mkdir(join(prefix, d));
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  const servers = upstreams
    .map((u) => `    server ${new URL(u).host} max_fails=3 fail_timeout=5s;`)
    .join('\n');
  await writeFile(
    conf,
    `user root;
worker_processes ${workers};
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  keepalive_requests 10000000;
  default_type application/octet-stream;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  proxy_cache_path ${prefix}/cache levels=1:2 keys_zone=clp_blobs:10m max_size=20g inactive=30d use_temp_path=off;
  upstream clp_servers {
${servers}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    include ${join(REPO, 'deploy/nginx/clp-locations.conf')};
  }
}
`,
  );
  const proc: ChildProcess = spawn('nginx', ['-c', conf, '-p', prefix], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let errors = '';
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => (errors += s));
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`nginx exited with ${proc.exitCode}: ${errors}`);
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > until) throw new Error(`nginx did not answer within 15 s: ${errors}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGQUIT');
        await exited;
      }
      await rm(prefix, { recursive: true, force: true });
    },
  };
}
