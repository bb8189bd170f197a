import type { Release, ReleaseDetail, ReleaseList, TierList } from '@clp/protocol';
import { endpoint, uploadEndpoint } from '../../lib/api-client.ts';

export const listReleases = endpoint<ReleaseList>('listReleases', 'GET', '/v1/releases');
export const getRelease = endpoint<ReleaseDetail>('getRelease', 'GET', '/v1/releases/:id');
export const uploadRelease = uploadEndpoint<Release>('uploadRelease', '/v1/releases');
export const promoteRelease = endpoint<Release, { tier: string }>(
  'promoteRelease',
  'POST',
  '/v1/releases/:id/promote',
);
export const yankRelease = endpoint<Release, { reason?: string }>(
  'yankRelease',
  'POST',
  '/v1/releases/:id/yank',
);
export const listTiers = endpoint<TierList>('listTiers', 'GET', '/v1/tiers');
