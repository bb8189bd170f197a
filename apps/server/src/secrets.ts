import { createHash, randomBytes } from 'node:crypto';

/** A new secret: a readable prefix naming its kind, then 32 random bytes in base64url. */
export function newSecret(prefix: 'clp_adm' | 'clp_enr' | 'clp_mch' | 'clp_ses'): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

/**
 * Secrets are 256-bit random values, so a plain sha256 is enough to store them: nothing can be
 * guessed from the hash, and lookups stay one indexed query.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** The bearer token of an Authorization header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S{1,512})\s*$/i.exec(header);
  return match?.[1];
}
