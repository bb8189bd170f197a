import type { SessionView } from '@clp/protocol';
import { useState } from 'preact/hooks';
import { describeFailure } from '../../components/feedback.tsx';
import { signIn } from '../../features/session/api.ts';

/** A user name and password, or an admin API token (the demo prints one). */
export function SignInPage({ onSignedIn }: { onSignedIn(session: SessionView): void }) {
  const [mode, setMode] = useState<'user' | 'token'>('user');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onSignedIn(await signIn({ body: mode === 'user' ? { username, password } : { token: token.trim() } }));
    } catch (failure) {
      setError(describeFailure(failure));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main id="main" class="sign-in">
      <h1>Core LivePatch</h1>
      <form onSubmit={submit} class="card" aria-describedby={error ? 'sign-in-error' : undefined}>
        <h2>Sign in</h2>
        <div role="radiogroup" aria-label="Sign in with" class="segmented">
          <label>
            <input type="radio" name="mode" checked={mode === 'user'} onChange={() => setMode('user')} /> Name
            and password
          </label>
          <label>
            <input type="radio" name="mode" checked={mode === 'token'} onChange={() => setMode('token')} />{' '}
            API token
          </label>
        </div>
        {mode === 'user' ? (
          <>
            <label class="field">
              User name
              <input
                name="username"
                autoComplete="username"
                required
                value={username}
                onInput={(e) => setUsername((e.target as HTMLInputElement).value)}
              />
            </label>
            <label class="field">
              Password
              <input
                name="password"
                type="password"
                autoComplete="current-password"
                required
                value={password}
                onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
              />
            </label>
          </>
        ) : (
          <label class="field">
            Admin API token
            <input
              name="token"
              type="password"
              autoComplete="off"
              required
              value={token}
              onInput={(e) => setToken((e.target as HTMLInputElement).value)}
            />
            <span class="muted small">
              scripts/start.sh prints one; clpctl admin api-tokens create makes more.
            </span>
          </label>
        )}
        {error ? (
          <p id="sign-in-error" class="error-text" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
