import type {
  AuditList,
  CreateRolloutBody,
  MaintenanceWindowList,
  ReportList,
  RolloutList,
  RolloutPreview,
  RolloutProgressView,
  RolloutTimeline,
} from '@clp/protocol';
import type { z } from 'zod';
import { endpoint } from '../../lib/api-client.ts';

export type RolloutAction = 'pause' | 'resume' | 'abort' | 'revert' | 'approve' | 'retry-failed';

/** The create form's body: what the server's schema accepts before its defaults are filled in. */
export type NewRollout = z.input<typeof CreateRolloutBody>;

export const listRollouts = endpoint<RolloutList>('listRollouts', 'GET', '/v1/rollouts');
export const getRollout = endpoint<RolloutProgressView>('getRollout', 'GET', '/v1/rollouts/:id');
export const getRolloutTimeline = endpoint<RolloutTimeline>(
  'rolloutTimeline',
  'GET',
  '/v1/rollouts/:id/timeline',
);
export const getRolloutAudit = endpoint<AuditList>('rolloutAudit', 'GET', '/v1/rollouts/:id/audit');
export const previewRollout = endpoint<RolloutPreview, NewRollout>(
  'previewRollout',
  'POST',
  '/v1/rollouts/preview',
);
export const createRollout = endpoint<RolloutProgressView, NewRollout>(
  'createRollout',
  'POST',
  '/v1/rollouts',
);
export const listReports = endpoint<ReportList>('listReports', 'GET', '/v1/reports');

const actions = {
  pause: endpoint<RolloutProgressView, { reason?: string }>('pauseRollout', 'POST', '/v1/rollouts/:id/pause'),
  resume: endpoint<RolloutProgressView, { reason?: string }>(
    'resumeRollout',
    'POST',
    '/v1/rollouts/:id/resume',
  ),
  abort: endpoint<RolloutProgressView, { reason?: string }>('abortRollout', 'POST', '/v1/rollouts/:id/abort'),
  revert: endpoint<RolloutProgressView, { reason?: string }>(
    'revertRollout',
    'POST',
    '/v1/rollouts/:id/revert',
  ),
  approve: endpoint<RolloutProgressView, { reason?: string }>(
    'approveRollout',
    'POST',
    '/v1/rollouts/:id/approve',
  ),
  'retry-failed': endpoint<RolloutProgressView, { reason?: string }>(
    'retryFailedRollout',
    'POST',
    '/v1/rollouts/:id/retry-failed',
  ),
} as const;

export function actOnRollout(
  id: string,
  action: RolloutAction,
  reason: string,
): Promise<RolloutProgressView> {
  return actions[action]({ params: { id }, body: reason ? { reason } : {} });
}

export const listMaintenanceWindows = endpoint<MaintenanceWindowList>(
  'listMaintenanceWindows',
  'GET',
  '/v1/maintenance-windows',
);
