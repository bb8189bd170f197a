import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { buildOpenApi, ROUTES } from '../src/index.ts';

/**
 * Checks a response against the server's own OpenAPI document: the status must be one the
 * operation lists, the media type one it documents for that status, and a JSON body must validate
 * against the documented schema. The test harness runs this on every response a test receives
 * (see watchResponses in harness.ts), so a status or a body the document does not describe fails
 * the test that met it.
 */

type Json = Record<string, any>;

const doc = buildOpenApi(ROUTES) as Json;
// Formats (uuid, date-time…) are left unchecked: the response schemas use none, and zod's own
// keywords would otherwise need declaring one by one.
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: false });
const validators = new Map<string, ValidateFunction>();

interface Operation {
  method: string;
  template: string;
  pattern: RegExp;
  op: Json;
}

const operations: Operation[] = Object.entries(doc.paths as Record<string, Json>).flatMap(([template, ops]) =>
  Object.entries(ops).map(([method, op]) => ({
    method: method.toUpperCase(),
    template,
    pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
    op: op as Json,
  })),
);

function find(method: string, path: string): Operation | undefined {
  const matching = operations.filter((o) => o.pattern.test(path));
  // Express answers HEAD on a GET route when no HEAD route is declared.
  return (
    matching.find((o) => o.method === method) ??
    (method === 'HEAD' ? matching.find((o) => o.method === 'GET') : undefined)
  );
}

function validate(key: string, schema: Json, value: unknown): string | undefined {
  let check = validators.get(key);
  if (!check) {
    check = ajv.compile(schema);
    validators.set(key, check);
  }
  if (check(value)) return undefined;
  return ajv.errorsText(check.errors, { dataVar: 'body' });
}

/** Undefined when the response conforms to the document, else what is wrong with it. */
export function conformanceProblem(
  method: string,
  path: string,
  status: number,
  contentType: string | null,
  body: string,
): string | undefined {
  const where = `${method} ${path} → ${status}`;
  // The console's pages and assets (and / sending a browser there) are served beside the API,
  // not operations of it.
  if (path === '/' || path === '/console' || path.startsWith('/console/')) return undefined;
  // Express routes are not strict: /v1/releases/ is /v1/releases.
  const operation = find(method, path.length > 1 ? path.replace(/\/$/, '') : path);
  if (!operation) {
    // No route: the server's fallback answer, a 404 in the error shape.
    if (status !== 404) return `${where}: no operation in the document for this path`;
    if (method === 'HEAD') return undefined;
    return jsonProblem(`${where} (no route)`, 'error', errorBodySchema(), contentType, body);
  }
  const response = operation.op.responses?.[String(status)] as Json | undefined;
  if (!response) {
    return `${where}: status ${status} is not documented for ${operation.method} ${operation.template} (documented: ${Object.keys(operation.op.responses ?? {}).join(', ')})`;
  }
  if (method === 'HEAD' || status === 304 || body === '') return undefined;
  const content = response.content as Json | undefined;
  if (!content) return `${where}: a body is sent where the document describes none`;
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const documented = content[type] as Json | undefined;
  if (!documented)
    return `${where}: media type ${type || '(none)'} is not documented (${Object.keys(content).join(', ')})`;
  if (type !== 'application/json') return undefined;
  return jsonProblem(
    where,
    `${operation.op.operationId} ${status}`,
    documented.schema as Json,
    contentType,
    body,
  );
}

function jsonProblem(where: string, key: string, schema: Json, contentType: string | null, body: string) {
  if (!(contentType ?? '').includes('json'))
    return `${where}: expected a JSON body, got ${contentType ?? 'no content type'}`;
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return `${where}: the body is not JSON`;
  }
  const problem = validate(key, schema, value);
  return problem ? `${where}: ${problem}; body ${body.slice(0, 300)}` : undefined;
}

let errorSchemaCache: Json | undefined;
function errorBodySchema(): Json {
  if (!errorSchemaCache) {
    const any = operations.find((o) => o.op.responses?.['400'])!;
    errorSchemaCache = any.op.responses['400'].content['application/json'].schema as Json;
  }
  return errorSchemaCache;
}
