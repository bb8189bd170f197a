import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { estimateTokenBits, MIN_TOKEN_BITS, weakTokenReason } from '../src/token-strength.ts';

describe('bootstrap token strength', () => {
  it.each([
    ['the server’s own tokens', () => `clp_adm_${randomBytes(32).toString('base64url')}`],
    ['32 random bytes in hex', () => randomBytes(32).toString('hex')],
    ['32 random bytes in base64', () => randomBytes(32).toString('base64')],
    ['16 random bytes in hex', () => randomBytes(16).toString('hex')],
  ])('accepts %s', (_what, make) => {
    for (let i = 0; i < 50; i++) expect(estimateTokenBits(make())).toBeGreaterThanOrEqual(MIN_TOKEN_BITS);
  });

  it.each([
    ['a short phrase', 'fleet-admin-token'],
    ['the prefix and a word', 'clp_adm_secret'],
    ['one character repeated', 'x'.repeat(200)],
    ['a short pattern repeated', 'ab'.repeat(60)],
    ['digits', '1234567890123456789012345678901234'],
    ['nothing after the prefix', 'clp_adm_'],
  ])('refuses %s', (_what, token) => {
    expect(estimateTokenBits(token)).toBeLessThan(MIN_TOKEN_BITS);
    const reason = weakTokenReason('CLP_BOOTSTRAP_TOKEN', token)!;
    expect(reason).toMatch(
      /^CLP_BOOTSTRAP_TOKEN is too weak .* at least 128 are needed; use 32 random bytes/,
    );
    expect(reason).not.toContain(token === 'clp_adm_' ? 'clp_adm_x' : token);
  });
});
