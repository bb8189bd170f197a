import type { AdminRole } from '@clp/protocol';

/**
 * What each role may do in the console: the one place that decides which buttons are shown and
 * enabled. It mirrors the server's access rules (routes.ts ROLES), and a test checks each
 * permission against the route it calls, so the console never offers what the server refuses.
 */
export const PERMISSIONS = {
  uploadRelease: ['admin', 'release'],
  promoteRelease: ['admin', 'release'],
  yankRelease: ['admin', 'release'],
  createRollout: ['admin', 'operator'],
  steerRollout: ['admin', 'operator'],
  revokeMachine: ['admin', 'operator'],
  manageEnrollmentTokens: ['admin', 'operator'],
  manageApiTokens: ['admin'],
  manageUsers: ['admin'],
} as const satisfies Record<string, readonly AdminRole[]>;

export type Permission = keyof typeof PERMISSIONS;

export function can(role: AdminRole | undefined, permission: Permission): boolean {
  return role !== undefined && (PERMISSIONS[permission] as readonly AdminRole[]).includes(role);
}

/** The server operations each permission stands for (checked against the route table by a test). */
export const PERMISSION_ROUTES: Record<Permission, readonly string[]> = {
  uploadRelease: ['uploadRelease'],
  promoteRelease: ['promoteRelease'],
  yankRelease: ['yankRelease'],
  createRollout: ['createRollout', 'previewRollout'],
  steerRollout: [
    'pauseRollout',
    'resumeRollout',
    'abortRollout',
    'revertRollout',
    'approveRollout',
    'retryFailedRollout',
  ],
  revokeMachine: ['revokeMachine'],
  manageEnrollmentTokens: ['createEnrollmentToken', 'revokeEnrollmentToken'],
  manageApiTokens: ['createAdminToken', 'listAdminTokens', 'revokeAdminToken'],
  manageUsers: ['listUsers', 'createUser', 'editUser'],
};
