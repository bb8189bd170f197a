import { ApiError } from '@clp/protocol';
import { z } from 'zod';
import type { Route } from './routes.ts';
import { VERSION } from './version.ts';

type Json = Record<string, unknown>;

function schema(type: z.ZodType, io: 'input' | 'output'): Json {
  const { $schema: _drop, ...rest } = z.toJSONSchema(type, { io, unrepresentable: 'any' }) as Json;
  return rest;
}

/** Query or path parameters from an object schema. */
function parameters(type: z.ZodType | undefined, where: 'path' | 'query'): Json[] {
  if (!type) return [];
  const s = schema(type, 'input');
  const props = (s.properties ?? {}) as Record<string, Json>;
  const required = new Set((s.required ?? []) as string[]);
  return Object.entries(props).map(([name, p]) => ({
    name,
    in: where,
    required: where === 'path' || required.has(name),
    schema: p,
  }));
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Invalid request: CLP_E_VALIDATION with the field (a bad value, a control character in any text), or another code',
  401: 'Missing, unknown, expired or revoked credential (or enrollment token)',
  403: 'Valid admin token or user of a role that may not do this (CLP_E_FORBIDDEN), or a cookie request without its CSRF token (CLP_E_CSRF)',
  404: 'Not found',
  409: 'Conflict with the current state',
  413: 'Body larger than the limit',
  415: 'Upload not sent as application/octet-stream',
  416: 'Range not satisfiable (Content-Range: bytes */SIZE)',
  422: 'Archive rejected: the format or trust library error code',
  429: 'Rate limited: this credential (or, without one, this address) failed too often (Retry-After)',
  503: 'The database is not reachable right now (Retry-After)',
};

/** Every status a route can answer: its success, what its access rule and body bring, and its own. */
export function statusesOf(route: Route): number[] {
  const codes = new Set<number>([route.status ?? 200, 400, ...(route.statuses ?? [])]);
  const kind = route.access.kind;
  if (kind !== 'public') codes.add(503);
  if (kind === 'admin' || kind === 'agent' || kind === 'enroll') codes.add(401).add(429);
  if (kind === 'admin') codes.add(403);
  if (route.body) codes.add(413);
  if (route.body === 'binary') codes.add(415);
  return [...codes].sort((a, b) => a - b);
}

/** The OpenAPI 3.1 document of a route table. */
export function buildOpenApi(routes: readonly Route[]): Json {
  const paths: Record<string, Record<string, Json>> = {};
  const errorSchema = schema(ApiError, 'output');
  for (const route of routes) {
    const path = route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const op: Json = {
      operationId: route.id,
      summary: route.summary,
      parameters: [...parameters(route.params, 'path'), ...parameters(route.query, 'query')],
    };
    if (route.access.kind === 'admin') {
      op.security = [{ adminToken: [] }, { consoleSession: [] }];
      op['x-roles'] = route.access.roles;
    } else if (route.access.kind === 'agent') {
      op.security = [{ machineCredential: [] }];
    } else {
      op.security = [];
    }
    if (route.body === 'binary') {
      op.requestBody = {
        required: true,
        content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
      };
    } else if (route.body) {
      op.requestBody = {
        required: true,
        content: { 'application/json': { schema: schema(route.body, 'input') } },
      };
    }
    const ok = route.status ?? 200;
    const success = route.response
      ? { 'application/json': { schema: schema(route.response, 'output') } }
      : route.content
        ? { [route.content.type]: { schema: route.content.schema } }
        : undefined;
    const responses: Record<string, Json> = {};
    for (const code of statusesOf(route)) {
      if (code === ok || (code === 200 && route.body === 'binary')) {
        responses[String(code)] = {
          description: code === ok ? 'Success' : 'Already stored: the existing release',
          ...(success ? { content: success } : {}),
        };
      } else if (code === 206) {
        responses['206'] = {
          description: 'The requested range (Content-Range)',
          ...(success ? { content: success } : {}),
        };
      } else if (code === 304) {
        responses['304'] = { description: 'Not modified: the If-None-Match ETag matches' };
      } else if (code === 503 && route.id === 'readyz') {
        responses['503'] = { description: 'Not ready: the database does not answer', content: success };
      } else {
        responses[String(code)] = {
          description: STATUS_TEXT[code] ?? 'Error',
          content: { 'application/json': { schema: errorSchema } },
        };
      }
    }
    op.responses = responses;
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Core LivePatch server', version: VERSION },
    components: {
      securitySchemes: {
        adminToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'Admin API token (roles: admin, release, operator, viewer)',
        },
        consoleSession: {
          type: 'apiKey',
          in: 'cookie',
          name: 'clp_session',
          description:
            'The console session from POST /v1/session (HttpOnly, SameSite=Strict); POST, PUT, PATCH and DELETE must also send its CSRF token as X-CLP-CSRF',
        },
        machineCredential: {
          type: 'http',
          scheme: 'bearer',
          description: 'The credential a machine got when it enrolled',
        },
      },
    },
    paths,
  };
}
