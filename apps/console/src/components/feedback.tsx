import type { ComponentChildren } from 'preact';
import { createContext } from 'preact';
import { useCallback, useContext, useState } from 'preact/hooks';
import { ApiFailure } from '../lib/api-client.ts';

export interface Toast {
  id: number;
  kind: 'ok' | 'error';
  text: string;
}

type Notify = (kind: Toast['kind'], text: string) => void;
const NotifyContext = createContext<Notify>(() => {});

/** Every action says how it went: a message that stays a few seconds (errors until dismissed). */
export function FeedbackProvider({ children }: { children: ComponentChildren }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const notify = useCallback<Notify>((kind, text) => {
    const id = Date.now() + Math.random();
    setToasts((list) => [...list.slice(-4), { id, kind, text }]);
    if (kind === 'ok') setTimeout(() => setToasts((list) => list.filter((t) => t.id !== id)), 6000);
  }, []);
  return (
    <NotifyContext.Provider value={notify}>
      {children}
      <div class="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} class={`toast toast-${t.kind}`} data-testid={`toast-${t.kind}`}>
            <span>{t.text}</span>
            <button
              type="button"
              class="link"
              aria-label="Dismiss"
              onClick={() => setToasts((list) => list.filter((x) => x.id !== t.id))}
            >
              ×
            </button>
          </div>
        ))}
      </div>
    </NotifyContext.Provider>
  );
}

export function useNotify(): Notify {
  return useContext(NotifyContext);
}

/** What to tell a person about a failure: the server's words, and what to do for the common codes. */
export function describeFailure(error: unknown): string {
  if (!(error instanceof ApiFailure))
    return `something went wrong in the console: ${String(error)}; reload the page`;
  const hint: Record<string, string> = {
    CLP_E_FORBIDDEN: 'Your role may not do this; ask an admin.',
    CLP_E_CSRF: 'Reload the page and try again.',
    CLP_E_RATE_LIMITED: 'Wait a minute and try again.',
  };
  const extra = hint[error.code];
  return `${error.message}${extra ? ` ${extra}` : ''} (${error.code})`;
}

export function ErrorBox({ error, retry }: { error: unknown; retry?: () => void }) {
  return (
    <div class="error-box" role="alert">
      <p>{describeFailure(error)}</p>
      {retry ? (
        <button type="button" onClick={retry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}
