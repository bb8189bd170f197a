import { ClpError } from '@clp/format';
import type { AdminClient } from './admin-client.ts';
import type { Release } from './api-types.ts';
import { AdminError } from './errors.ts';

/**
 * A release is named on the command line by its id (sha256), a unique prefix of it (at least 6
 * hex digits), or its patch name (CLP1251123). Answers the full id.
 */
export async function resolveRelease(client: AdminClient, ref: string): Promise<string> {
  const wanted = ref.trim().toLowerCase();
  if (/^[0-9a-f]{64}$/.test(wanted)) return wanted;
  const byName = await client.get<{ releases: Release[] }>('/v1/releases', { name: ref.trim() });
  if (byName.releases.length === 1) return byName.releases[0]!.id;
  if (!/^[0-9a-f]{6,63}$/.test(wanted)) {
    throw new ClpError('CLP_E_NOT_FOUND', `no release named ${ref}; list them with 'clpctl admin releases'`);
  }
  const all = await client.get<{ releases: Release[] }>('/v1/releases', { limit: 1000 });
  const matches = all.releases.filter((r) => r.id.startsWith(wanted));
  if (matches.length === 1) return matches[0]!.id;
  if (matches.length === 0) {
    throw new ClpError(
      'CLP_E_NOT_FOUND',
      `no release id starts with ${ref}; list them with 'clpctl admin releases'`,
    );
  }
  throw new AdminError(
    'CLP_E_ADMIN_AMBIGUOUS',
    `${ref} matches ${matches.length} releases (${matches.map((r) => r.name).join(', ')}); give more digits of the id`,
  );
}
