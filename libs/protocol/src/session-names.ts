/** The header that carries the CSRF token of a cookie session, and the cookie's name (no zod: the console bundles this alone). */
export const CSRF_HEADER = 'x-clp-csrf';
export const SESSION_COOKIE = 'clp_session';
