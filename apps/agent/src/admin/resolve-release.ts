import { ClpError } from '@clp/format';
import type { AdminClient } from './admin-client.ts';
import type { Release } from './api-types.ts';
import { AdminError } from './errors.ts';

/**
 * A release is named on the command line by its id (sha256), a unique prefix of it, or its patch
 * name (CLP1251123). Answers the full id.
 */
export async function resolveRelease(client: AdminClient, ref: string): Promise<string> {
  const wanted = ref.trim().toLowerCase();
  if (/^[0-9a-f]{64}$/.test(wanted)) return wanted;
  const byName = await client.get<{ releases: Release[] }>('/v1/releases', { name: ref.trim() });
  if (byName.releases.length === 1) return byName.releases[0]!.id;
  if (!/^[0-9a-f]{1,63}$/.test(wanted)) {
    throw new ClpError(
      'CLP_E_NOT_FOUND',
      `no release named ${ref}, and it is not the start of a release id (hex digits); list them with 'clpctl admin releases'`,
      { details: { release: ref } },
    );
  }
  const all = await client.get<{ releases: Release[] }>('/v1/releases', { limit: 1000 });
  const matches = all.releases.filter((r) => r.id.startsWith(wanted));
  if (matches.length === 1) return matches[0]!.id;
  if (matches.length === 0) {
    throw new ClpError(
      'CLP_E_NOT_FOUND',
      `no release is named ${ref} or has an id starting with it; list them with 'clpctl admin releases'`,
      { details: { release: ref } },
    );
  }
  throw new AdminError(
    'CLP_E_ADMIN_AMBIGUOUS',
    `${ref} is the start of ${matches.length} release ids (${matches
      .slice(0, 5)
      .map((r) => `${r.id.slice(0, 12)} ${r.name}`)
      .join(', ')}${matches.length > 5 ? ', …' : ''}); give more digits, or the patch name`,
    { details: { release: ref, matches: matches.length } },
  );
}
