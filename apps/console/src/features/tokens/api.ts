import type {
  AdminRole,
  AdminToken,
  AdminTokenList,
  CreatedAdminToken,
  CreatedEnrollmentToken,
  EnrollmentToken,
  EnrollmentTokenList,
} from '@clp/protocol';
import { endpoint } from '../../lib/api-client.ts';

export interface NewEnrollmentToken {
  tier: string;
  tags: string[];
  uses: number;
  expiresInSeconds: number;
}

export const listEnrollmentTokens = endpoint<EnrollmentTokenList>(
  'listEnrollmentTokens',
  'GET',
  '/v1/enrollment-tokens',
);
export const createEnrollmentToken = endpoint<CreatedEnrollmentToken, NewEnrollmentToken>(
  'createEnrollmentToken',
  'POST',
  '/v1/enrollment-tokens',
);
export const revokeEnrollmentToken = endpoint<EnrollmentToken>(
  'revokeEnrollmentToken',
  'POST',
  '/v1/enrollment-tokens/:id/revoke',
);
export const listApiTokens = endpoint<AdminTokenList>('listAdminTokens', 'GET', '/v1/admin-tokens');
export const createApiToken = endpoint<
  CreatedAdminToken,
  { name: string; role: AdminRole; expiresInSeconds?: number }
>('createAdminToken', 'POST', '/v1/admin-tokens');
export const revokeApiToken = endpoint<AdminToken>('revokeAdminToken', 'POST', '/v1/admin-tokens/:id/revoke');
