import type { AdminRole } from '@clp/db';
import {
  ChangePasswordBody,
  CreateUserBody,
  EditUserBody,
  Overview,
  RolloutPreview,
  RolloutPreviewBody,
  RolloutTimeline,
  RolloutTimelineQuery,
  SessionView,
  SignInBody,
  SignOutResult,
  User,
  UserList,
  UserListQuery,
} from '@clp/protocol';
import { z } from 'zod';
import type { Access } from './auth.ts';
import { overview } from './overview.ts';
import { previewRollout, rolloutTimeline } from './rollout-insight.ts';
import { ROLES, type Route, route } from './routes.ts';
import { RolloutIdParam } from './schemas.ts';
import { currentSession, signIn, signOut } from './sessions.ts';
import { changeOwnPassword, createUser, editUser, listUsers } from './users.ts';

// A user is named by its id (a UUID) or its user name, and both fit the user name's pattern.
const UserIdParam = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a user id or user name'),
});

/**
 * Sessions, users and the fleet views that the console needed first (overview, a rollout's
 * timeline, a rollout preview). They are documented API like every other route, and clpctl admin
 * uses them too. A function, because this module and routes.ts import each other.
 */
export function consoleRoutes(): Route[] {
  const admin = (roles: readonly AdminRole[]): Access => ({ kind: 'admin', roles });
  return [
    route({
      id: 'signIn',
      statuses: [401, 403, 429, 503],
      method: 'POST',
      path: '/v1/session',
      summary:
        'Sign in to the console with a user name and password or an admin token: sets the HttpOnly session cookie and answers the CSRF token',
      access: { kind: 'public' },
      body: SignInBody,
      response: SessionView,
      status: 201,
      handle: async (ctx, { body, req, res }) => ({ status: 201, body: await signIn(ctx, body, req, res) }),
    }),
    route({
      id: 'getSession',
      method: 'GET',
      path: '/v1/session',
      summary: "Who is calling (name, role), the server's time, and for a cookie session its CSRF token",
      access: admin(ROLES.read),
      response: SessionView,
      handle: async (ctx, { principal, req, res }) => ({
        body: await currentSession(ctx, principal, req, res),
      }),
    }),
    route({
      id: 'signOut',
      method: 'DELETE',
      path: '/v1/session',
      summary: 'Sign out: ends the cookie session on the server and clears the cookie',
      access: admin(ROLES.read),
      response: SignOutResult,
      handle: async (ctx, { req, res }) => ({ body: await signOut(ctx, req, res) }),
    }),
    route({
      id: 'listUsers',
      method: 'GET',
      path: '/v1/users',
      summary: 'List console users (never their password hashes)',
      access: admin(ROLES.admin),
      query: UserListQuery,
      response: UserList,
      handle: async (ctx, { query }) => ({ body: await listUsers(ctx, query) }),
    }),
    route({
      id: 'createUser',
      statuses: [409],
      method: 'POST',
      path: '/v1/users',
      summary:
        'Create a console user with a role and a password (at least 12 characters; stored as a scrypt hash)',
      access: admin(ROLES.admin),
      body: CreateUserBody,
      response: User,
      status: 201,
      handle: async (ctx, { body, principal }) => ({
        status: 201,
        body: await createUser(ctx, body, principal),
      }),
    }),
    route({
      id: 'editUser',
      statuses: [404],
      method: 'PATCH',
      path: '/v1/users/:id',
      summary:
        "Change a user's role, password or disabled state (id or user name); a new password or disabling ends the user's sessions",
      access: admin(ROLES.admin),
      params: UserIdParam,
      body: EditUserBody,
      response: User,
      handle: async (ctx, { params, body, principal }) => ({
        body: await editUser(ctx, params.id, body, principal),
      }),
    }),
    route({
      id: 'changeOwnPassword',
      // Public, but it checks the current password as a sign-in does.
      statuses: [401, 429, 503],
      method: 'POST',
      path: '/v1/users/password',
      summary:
        "Change one's own password by giving the current one (no token needed); ends every session of the user. Failures count as failed sign-ins",
      access: { kind: 'public' },
      body: ChangePasswordBody,
      response: User,
      handle: async (ctx, { body }) => ({ body: await changeOwnPassword(ctx, body) }),
    }),
    route({
      id: 'getOverview',
      method: 'GET',
      path: '/v1/overview',
      summary:
        'The fleet at a glance: machines enrolled and seen, machines per installed patch, live rollouts, recent failures',
      access: admin(ROLES.read),
      response: Overview,
      handle: async (ctx) => ({ body: await overview(ctx) }),
    }),
    route({
      id: 'rolloutTimeline',
      statuses: [404],
      method: 'GET',
      path: '/v1/rollouts/:id/timeline',
      summary:
        'Applied and failed reports of a rollout over time, with the failure rate and its halt threshold',
      access: admin(ROLES.read),
      params: RolloutIdParam,
      query: RolloutTimelineQuery,
      response: RolloutTimeline,
      handle: async (ctx, { params, query }) => ({
        body: await rolloutTimeline(ctx, params.id, query.buckets),
      }),
    }),
    route({
      id: 'previewRollout',
      statuses: [404, 409],
      method: 'POST',
      path: '/v1/rollouts/preview',
      summary:
        'How many machines each stage of a rollout would reach now; create the rollout with the proposed id to reach exactly those',
      access: admin(ROLES.operator),
      body: RolloutPreviewBody,
      response: RolloutPreview,
      handle: async (ctx, { body }) => ({ body: await previewRollout(ctx, body) }),
    }),
  ];
}
