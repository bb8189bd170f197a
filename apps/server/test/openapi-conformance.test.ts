import { describe, expect, it } from 'vitest';
import { buildOpenApi, ROUTES, statusesOf } from '../src/index.ts';
import { conformanceProblem } from './conformance.ts';

/**
 * The checker that the harness runs on every response of the server suite: it must refuse what
 * the document does not describe, or a green suite would prove nothing.
 */
describe('the OpenAPI conformance check', () => {
  const json = 'application/json; charset=utf-8';
  const error = JSON.stringify({ error: { code: 'CLP_E_NOT_FOUND', message: 'no such thing' } });

  it('accepts a documented status with a body of the documented shape', () => {
    expect(conformanceProblem('GET', '/v1/tiers', 200, json, JSON.stringify({ tiers: [] }))).toBeUndefined();
    expect(conformanceProblem('GET', '/v1/rollouts/x', 404, json, error)).toBeUndefined();
    expect(conformanceProblem('GET', '/nowhere', 404, json, error)).toBeUndefined();
    expect(conformanceProblem('HEAD', '/v1/tiers', 200, json, '')).toBeUndefined();
  });

  it('refuses a status the operation does not list', () => {
    expect(conformanceProblem('GET', '/v1/tiers', 409, json, error)).toMatch(
      /status 409 is not documented for GET \/v1\/tiers/,
    );
    expect(conformanceProblem('GET', '/v1/tiers', 500, json, error)).toMatch(/not documented/);
  });

  it('refuses a body that does not match the schema', () => {
    expect(
      conformanceProblem('GET', '/v1/tiers', 200, json, JSON.stringify({ tiers: [{ name: 1 }] })),
    ).toMatch(/body\/tiers\/0/);
    expect(conformanceProblem('GET', '/v1/tiers', 401, json, JSON.stringify({ oops: true }))).toMatch(
      /must have required property 'error'/,
    );
    expect(conformanceProblem('GET', '/v1/tiers', 200, 'text/html', '<html>')).toMatch(
      /media type text\/html/,
    );
  });

  it('lists every status the routes answer, with recentReports in the machine and patterns on ids', () => {
    const doc = buildOpenApi(ROUTES) as any;
    for (const route of ROUTES) {
      const op = doc.paths[route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')][route.method.toLowerCase()];
      expect(Object.keys(op.responses).map(Number)).toEqual(statusesOf(route));
      for (const p of op.parameters.filter((x: { in: string }) => x.in === 'path'))
        expect(p.schema.pattern ?? p.schema.enum, `${route.id} ${p.name}`).toBeDefined();
    }
    const all = new Set(ROUTES.flatMap((r) => statusesOf(r)));
    for (const code of [206, 304, 404, 409, 413, 415, 416, 503])
      expect(all.has(code), String(code)).toBe(true);
    const machine = doc.paths['/v1/machines/{id}'].get.responses['200'].content['application/json'].schema;
    expect(machine.required).toContain('recentReports');
    expect(doc.paths['/v1/blobs/{sha256}'].get.responses['206'].content).toHaveProperty(
      'application/octet-stream',
    );
  });
});
