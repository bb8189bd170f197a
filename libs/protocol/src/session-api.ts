import { z } from 'zod';
import { ADMIN_ROLES } from './admin-api.ts';

/** Signing in to the console: a named user with a password, or an admin API token. */
export const SignInBody = z.union([
  z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(256) }).strict(),
  z.object({ token: z.string().min(1).max(512) }).strict(),
]);
export type SignInBody = z.infer<typeof SignInBody>;

/** Who is calling, and (for a cookie session) the token that unsafe requests must echo. */
export const SessionView = z.object({
  name: z.string(),
  role: z.enum(ADMIN_ROLES),
  /** user: a named account with a password; token: an admin API token. */
  account: z.enum(['user', 'token']),
  /** Set for a cookie session: send it as the X-CLP-CSRF header on every POST, PUT, PATCH, DELETE. */
  csrfToken: z.string().nullable(),
  expiresAt: z.string().nullable(),
  /** The server's clock, so that a browser with a wrong clock still shows right relative times. */
  serverTime: z.string(),
});
export type SessionView = z.infer<typeof SessionView>;

export const SignOutResult = z.object({ ended: z.boolean() });
export type SignOutResult = z.infer<typeof SignOutResult>;
