import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApi, ROUTES } from '../src/index.ts';
import { drivers, FACTS, type Running, start } from './harness.ts';

/**
 * Bar R10: requests generated from /openapi.json itself, as an API fuzzer would (valid shapes,
 * wrong types, out-of-range numbers, hostile text: NUL, escapes, lone surrogates, bad
 * percent-encoding), against every route with a credential it accepts. No answer may be a 5xx,
 * and every answer must conform to the document (the harness checks each one).
 */

type Json = Record<string, any>;

const RUNS_PER_ROUTE = Number(process.env.CLP_FUZZ_RUNS ?? 12);
const doc = buildOpenApi(ROUTES) as Json;

const hostile = fc.constantFrom(
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfff',
  '\u001b[2J',
  '\u0007',
  "' or '1'='1' --",
  '../../etc/passwd',
  '%00',
  'x'.repeat(300),
  '',
  ' ',
  '🚀東京',
  '1e309',
  '-1',
  'null',
);
const wrongType = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 8 }),
  fc.constant(null),
  fc.boolean(),
  fc.constant([]),
);

function arbitraryOf(schema: Json | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || depth > 4) return fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null));
  const alternatives = (schema.anyOf ?? schema.oneOf) as Json[] | undefined;
  if (alternatives) return fc.oneof(...alternatives.map((s) => arbitraryOf(s, depth + 1)));
  if (schema.enum)
    return fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...schema.enum) },
      { weight: 1, arbitrary: hostile },
    );
  if (schema.const !== undefined) return fc.constant(schema.const);
  const types = (Array.isArray(schema.type) ? schema.type : [schema.type]) as Array<string | undefined>;
  return fc.oneof(...types.map((t) => ofType(t, schema, depth)));
}

function ofType(type: string | undefined, schema: Json, depth: number): fc.Arbitrary<unknown> {
  switch (type) {
    case 'string':
      return fc.oneof(
        {
          weight: 3,
          arbitrary: schema.pattern
            ? fc.stringMatching(new RegExp(schema.pattern))
            : fc.string({ maxLength: Math.min(schema.maxLength ?? 40, 40) }),
        },
        { weight: 1, arbitrary: hostile },
      );
    case 'integer':
      return fc.oneof(
        {
          weight: 3,
          arbitrary: fc.integer({
            min: schema.minimum ?? -10,
            max: Math.min(schema.maximum ?? 1000, 2 ** 31),
          }),
        },
        { weight: 1, arbitrary: fc.constantFrom(-1, 0, 2 ** 31, 2 ** 53, 1e20, 1.5, -0) },
      );
    case 'number':
      return fc.oneof(
        fc.double({
          min: schema.minimum ?? -10,
          max: schema.maximum ?? 1000,
          noNaN: true,
          noDefaultInfinity: true,
        }),
        fc.constantFrom(-1, 1e308, 0),
      );
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(arbitraryOf(schema.items as Json, depth + 1), {
        maxLength: Math.min(schema.maxItems ?? 4, 4),
      });
    case 'object': {
      const props = (schema.properties ?? {}) as Record<string, Json>;
      const record = fc.record(
        Object.fromEntries(
          Object.entries(props).map(([k, s]) => [
            k,
            fc.oneof(
              { weight: 9, arbitrary: arbitraryOf(s, depth + 1) },
              { weight: 1, arbitrary: wrongType },
            ),
          ]),
        ),
        { requiredKeys: (schema.required ?? []) as never[] },
      );
      return Object.keys(props).length > 0
        ? record
        : fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 });
    }
    default:
      return fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null));
  }
}

/** Percent-encodes even what encodeURIComponent refuses (a lone surrogate: bytes that are no UTF-8). */
function encode(value: unknown): string {
  try {
    return encodeURIComponent(String(value));
  } catch {
    return '%ED%A0%80';
  }
}

interface Generated {
  path: Record<string, unknown>;
  query: Record<string, unknown>;
  body: unknown;
  bytes: Uint8Array;
  contentType: string;
}

function requestOf(op: Json): fc.Arbitrary<Generated> {
  const params = (op.parameters ?? []) as Json[];
  const group = (where: string) =>
    fc.record(
      Object.fromEntries(
        params.filter((p) => p.in === where).map((p) => [p.name as string, arbitraryOf(p.schema as Json)]),
      ),
      {
        requiredKeys: params
          .filter((p) => p.in === where && (where === 'path' || p.required))
          .map((p) => p.name) as never[],
      },
    );
  const content = (op.requestBody?.content ?? {}) as Json;
  const jsonSchema = content['application/json']?.schema as Json | undefined;
  return fc.record({
    path: group('path'),
    query: group('query'),
    body: jsonSchema
      ? fc.oneof({ weight: 9, arbitrary: arbitraryOf(jsonSchema) }, { weight: 1, arbitrary: wrongType })
      : fc.constant(undefined),
    bytes: fc.uint8Array({ maxLength: 256 }),
    contentType: fc.constantFrom('application/octet-stream', 'application/octet-streamx', 'text/plain'),
  });
}

describe.each(drivers())('the API under generated requests on $name', (driver) => {
  let s: Running;
  let machine: string;

  beforeAll(async () => {
    s = await start({ driver });
    const token = await s.call('POST', '/v1/enrollment-tokens', {
      token: s.admin,
      json: { tier: 'edge', uses: 1 },
    });
    const enrolled = await s.call('POST', '/v1/agent/enroll', {
      json: { token: token.body.token, facts: FACTS, machineId: 'fuzz-machine-1' },
    });
    expect(enrolled.status).toBe(201);
    machine = enrolled.body.credential;
  });
  afterAll(async () => {
    await s?.close();
  });

  const cases = ROUTES.map((route) => ({ route, label: `${route.method} ${route.path}` }));

  it.each(cases)('$label answers no 5xx and as the document says, whatever it is sent', async ({ route }) => {
    const template = route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const op = doc.paths[template][route.method.toLowerCase()] as Json;
    const token =
      route.access.kind === 'agent' ? machine : route.access.kind === 'admin' ? s.admin : undefined;
    await fc.assert(
      fc.asyncProperty(requestOf(op), async (g) => {
        const path = template.replace(/\{([^}]+)\}/g, (_, name: string) => encode(g.path[name]));
        const query = Object.entries(g.query)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `${encode(k)}=${encode(typeof v === 'object' ? JSON.stringify(v) : v)}`)
          .join('&');
        const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
        let body: string | Uint8Array | undefined;
        if (route.body === 'binary') {
          headers['content-type'] = g.contentType;
          body = g.bytes;
        } else if (route.body) {
          headers['content-type'] = 'application/json';
          body = g.body === undefined ? '' : JSON.stringify(g.body);
        }
        // The harness's fetch checks the answer against the document and throws if it does not conform.
        const res = await fetch(`${s.url}${path}${query ? `?${query}` : ''}`, {
          method: route.method,
          headers,
          body: body as RequestInit['body'],
        });
        const text = await res.text();
        expect(res.status, `${route.method} ${path}?${query}: ${text.slice(0, 300)}`).toBeLessThan(500);
      }),
      { numRuns: RUNS_PER_ROUTE },
    );
  });
});
