import { deflateRawSync } from 'node:zlib';

/** How strong an operator-chosen secret (CLP_BOOTSTRAP_TOKEN) is, estimated from its text alone. */

export const MIN_TOKEN_BITS = 128;

/** Standard alphabets, smallest first: a secret is judged by the smallest one that holds all its characters. */
const ALPHABETS: Array<{ size: number; test: RegExp }> = [
  { size: 10, test: /^[0-9]*$/ },
  { size: 16, test: /^([0-9a-f]*|[0-9A-F]*)$/ },
  { size: 36, test: /^([0-9a-z]*|[0-9A-Z]*)$/ },
  { size: 64, test: /^[0-9A-Za-z_\-+/=]*$/ },
  { size: 95, test: /^[\x20-\x7e]*$/ },
];

/** The prefix the server's own admin tokens carry: readable, so it adds nothing to the secret. */
const ADMIN_PREFIX = 'clp_adm_';

/**
 * Estimated bits of entropy: length × log2(alphabet), where the alphabet is the smallest standard
 * one that holds every character, and never more than the secret's size once compressed, so that
 * repeated patterns (`aaaa…`, `abab…`) count for what they are. Words a person chose cannot be
 * told from random text this way: the estimate is an upper bound, which is why a secret below it
 * is refused rather than one above it trusted blindly.
 */
export function estimateTokenBits(token: string): number {
  const secret = token.startsWith(ADMIN_PREFIX) ? token.slice(ADMIN_PREFIX.length) : token;
  const length = [...secret].length;
  if (length === 0) return 0;
  const alphabet = ALPHABETS.find((a) => a.test.test(secret))?.size ?? 95;
  const compressed = deflateRawSync(Buffer.from(secret, 'utf8'), { level: 9 }).length * 8;
  return Math.floor(Math.min(length * Math.log2(alphabet), compressed));
}

/** Undefined when the token is strong enough, else the sentence that says why it is refused. */
export function weakTokenReason(name: string, token: string): string | undefined {
  const bits = estimateTokenBits(token);
  if (bits >= MIN_TOKEN_BITS) return undefined;
  return (
    `${name} is too weak to guard the server: about ${bits} bits of entropy, at least ${MIN_TOKEN_BITS} are needed; ` +
    `use 32 random bytes, e.g. ${name}=clp_adm_$(openssl rand -hex 32), or leave it unset and the server makes one at its first start`
  );
}
