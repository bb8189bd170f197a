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
  400: 'Invalid request (CLP_E_VALIDATION with the field, or another code)',
  401: 'Missing, unknown, expired or revoked credential',
  403: 'Valid admin token or user of a role that may not do this (CLP_E_FORBIDDEN), or a cookie request without its CSRF token (CLP_E_CSRF)',
  404: 'Not found',
  409: 'Conflict with the current state',
  413: 'Upload larger than the limit',
  416: 'Range not satisfiable',
  422: 'Archive rejected: the format or trust library error code',
  429: 'Rate limited',
  503: 'The database is not reachable right now (Retry-After)',
};

function errorsFor(route: Route): number[] {
  const codes = [400];
  if (route.access.kind !== 'public') codes.push(503);
  if (route.access.kind === 'admin' || route.access.kind === 'agent') codes.push(401, 429);
  if (route.access.kind === 'admin') codes.push(403);
  if (route.access.kind === 'enroll') codes.push(401, 429);
  if (route.path.includes(':')) codes.push(404);
  if (route.body === 'binary') codes.push(409, 413, 422);
  if (route.id === 'getBlob') codes.push(416);
  // A window for a tier that does not exist.
  if (route.id === 'setMaintenanceWindow') codes.push(404);
  if (route.path.startsWith('/v1/rollouts/') && route.method === 'POST') codes.push(409);
  // Sign-in is public but checks its credential; names and ids chosen by the caller may be taken.
  if (route.id === 'signIn') codes.push(401, 403, 429, 503);
  if (['createUser', 'createRollout', 'previewRollout'].includes(route.id)) codes.push(409);
  return codes;
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
    const ok = String(route.status ?? 200);
    const responses: Record<string, Json> = {
      [ok]: route.response
        ? {
            description: 'Success',
            content: { 'application/json': { schema: schema(route.response, 'output') } },
          }
        : { description: 'Success' },
    };
    if (route.body === 'binary')
      responses['200'] = {
        description: 'Already stored: the existing release',
        content: responses[ok]!.content,
      };
    for (const code of errorsFor(route)) {
      responses[String(code)] = {
        description: STATUS_TEXT[code] ?? 'Error',
        content: { 'application/json': { schema: errorSchema } },
      };
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
