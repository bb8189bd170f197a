import type { SessionView } from '@clp/protocol';
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

export interface SessionState {
  session: SessionView;
  signOut(): void;
  /** Takes a new session (after signing in again, e.g. with a new password). */
  renew(session: SessionView): void;
}

export const SessionContext = createContext<SessionState | undefined>(undefined);

/** The signed-in person (pages render only inside a session). */
export function useSession(): SessionState {
  const state = useContext(SessionContext);
  if (!state) throw new Error('useSession outside of a signed-in page');
  return state;
}
