import { ClpError } from '@clp/format';
import type { AdminClient } from './admin-client.ts';
import type { Rollout } from './api-types.ts';
import { AdminError } from './errors.ts';

const FULL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A rollout is named by its id or a unique prefix of it, as releases are. Answers the full id. */
export async function resolveRollout(client: AdminClient, ref: string): Promise<string> {
  const wanted = ref.trim().toLowerCase();
  if (FULL_ID.test(wanted)) return wanted;
  if (!/^[0-9a-f-]{1,35}$/.test(wanted)) {
    throw new ClpError(
      'CLP_E_NOT_FOUND',
      `${ref} is not a rollout id or the start of one; list them with 'clpctl admin rollout list'`,
      { details: { rollout: ref } },
    );
  }
  const all = await client.get<{ rollouts: Rollout[] }>('/v1/rollouts');
  const matches = all.rollouts.filter((r) => r.id.startsWith(wanted));
  if (matches.length === 1) return matches[0]!.id;
  if (matches.length === 0) {
    throw new ClpError(
      'CLP_E_NOT_FOUND',
      `no rollout id starts with ${ref}; list them with 'clpctl admin rollout list'`,
      { details: { rollout: ref } },
    );
  }
  throw new AdminError(
    'CLP_E_ADMIN_AMBIGUOUS',
    `${ref} is the start of ${matches.length} rollout ids (${matches
      .slice(0, 5)
      .map((r) => `${r.id.slice(0, 13)} ${r.releaseName} to ${r.tier}`)
      .join(', ')}${matches.length > 5 ? ', …' : ''}); give more characters`,
    { details: { rollout: ref, matches: matches.length } },
  );
}
