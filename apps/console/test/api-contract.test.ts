import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildOpenApi, ROUTES } from '@clp/server';
import { describe, expect, it } from 'vitest';
import '../src/features/machines/api.ts';
import '../src/features/overview/api.ts';
import '../src/features/releases/api.ts';
import '../src/features/rollouts/api.ts';
import '../src/features/session/api.ts';
import '../src/features/tokens/api.ts';
import '../src/features/users/api.ts';
import type { AdminRole } from '@clp/protocol';
import { ENDPOINTS } from '../src/lib/api-client.ts';
import { can, PERMISSION_ROUTES, PERMISSIONS } from '../src/lib/authorization.ts';

type Operation = { operationId: string; 'x-roles'?: string[] };
const doc = buildOpenApi(ROUTES) as { paths: Record<string, Record<string, Operation>> };
const SRC = join(import.meta.dirname, '..', 'src');

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (/\.tsx?$/.test(entry.name)) out.push(path);
  }
  return out;
}

describe('the console API layer', () => {
  it('declares every endpoint once', () => {
    expect(ENDPOINTS.length).toBeGreaterThan(20);
    expect(new Set(ENDPOINTS.map((e) => e.id)).size).toBe(ENDPOINTS.length);
  });

  it.each(ENDPOINTS.map((e) => ({ ...e, label: `${e.method} ${e.path} (${e.id})` })))(
    'calls only documented routes: $label',
    ({ id, method, path }) => {
      const op = doc.paths[path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')]?.[method.toLowerCase()];
      expect(op, `${method} ${path} is not in /openapi.json`).toBeDefined();
      expect(op!.operationId).toBe(id);
    },
  );

  it('makes no HTTP call outside the api-client', async () => {
    for (const file of await sources(SRC)) {
      if (file.endsWith(join('lib', 'api-client.ts'))) continue;
      const text = await readFile(file, 'utf8');
      expect(/\bfetch\(|XMLHttpRequest|EventSource/.test(text), `${file} calls the server directly`).toBe(
        false,
      );
    }
  });
});

describe('nothing is console-only', () => {
  const ADMIN_CLI = join(import.meta.dirname, '..', '..', 'agent', 'src', 'admin');
  /** The console's session keeps its credential in a cookie; clpctl admin holds its token itself. */
  const SESSION_ONLY = new Set(['signIn', 'getSession', 'signOut']);

  it.each(
    ENDPOINTS.filter((e) => !SESSION_ONLY.has(e.id)).map((e) => ({ ...e, label: `${e.method} ${e.path}` })),
  )('clpctl admin calls $label too', async ({ path }) => {
    const cli = (await sources(ADMIN_CLI)).map((f) => readFile(f, 'utf8'));
    const text = (await Promise.all(cli)).join('\n');
    const literal = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const exact = new RegExp(`['\`]${literal.replace(/:[A-Za-z0-9_]+/g, '\\$\\{[^}]+\\}')}['\`?]`);
    // Rollout actions are one loop over their names: /v1/rollouts/${id}/${action}.
    const verb = /\/:id\/([a-z-]+)$/.exec(path)?.[1];
    const looped =
      verb !== undefined &&
      text.includes(`/${'$'}{action}`) &&
      new RegExp(`^\\s+'?${verb}'?: '`, 'm').test(text);
    expect(exact.test(text) || looped, `no clpctl admin command calls ${path}`).toBe(true);
  });
});

describe('the console authorization', () => {
  const roles: AdminRole[] = ['admin', 'release', 'operator', 'viewer'];
  const byId = new Map(ROUTES.map((r) => [r.id, r]));
  it.each(Object.keys(PERMISSIONS))(
    '%s is granted to exactly the roles the server lets call its routes',
    (permission) => {
      const p = permission as keyof typeof PERMISSIONS;
      for (const id of PERMISSION_ROUTES[p]) {
        const route = byId.get(id);
        expect(route, `no route ${id}`).toBeDefined();
        expect(route!.access.kind).toBe('admin');
        const allowed = route!.access.kind === 'admin' ? route!.access.roles : [];
        for (const role of roles) {
          expect(can(role, p), `${role} and ${id}`).toBe(role === 'admin' || allowed.includes(role));
        }
      }
    },
  );

  it('grants nothing without a role', () => {
    expect(can(undefined, 'steerRollout')).toBe(false);
  });
});
