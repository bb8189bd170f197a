import type { SessionView, SignInBody, SignOutResult } from '@clp/protocol';
import { endpoint } from '../../lib/api-client.ts';

export const signIn = endpoint<SessionView, SignInBody>('signIn', 'POST', '/v1/session', { public: true });
export const getSession = endpoint<SessionView>('getSession', 'GET', '/v1/session');
export const signOut = endpoint<SignOutResult>('signOut', 'DELETE', '/v1/session');
