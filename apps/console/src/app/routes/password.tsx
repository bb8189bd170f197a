import { useState } from 'preact/hooks';
import { describeFailure, useNotify } from '../../components/feedback.tsx';
import { signIn } from '../../features/session/api.ts';
import { changeOwnPassword } from '../../features/users/api.ts';
import { useSession } from '../../lib/session.ts';

/**
 * A signed-in user changes their own password. The server ends every session of the user (a
 * stolen session must not outlive the change), so the console signs in again with the new one.
 */
export function PasswordPage() {
  const { session, renew } = useSession();
  const notify = useNotify();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [repeat, setRepeat] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  if (session.account !== 'user') {
    return (
      <>
        <h1>Password</h1>
        <p>
          You signed in with an API token, which has no password. An admin makes user accounts on the Users
          page (or with <code>clpctl admin users create</code>).
        </p>
      </>
    );
  }

  async function submit(e: Event) {
    e.preventDefault();
    setError(undefined);
    if (next !== repeat) {
      setError('The new password and its repetition differ; type them again.');
      return;
    }
    setBusy(true);
    try {
      await changeOwnPassword({
        body: { username: session.name, currentPassword: current, newPassword: next },
      });
      renew(await signIn({ body: { username: session.name, password: next } }));
      setCurrent('');
      setNext('');
      setRepeat('');
      notify('ok', 'Password changed; your other sessions were signed out.');
    } catch (failure) {
      setError(describeFailure(failure));
    } finally {
      setBusy(false);
    }
  }

  const field = (label: string, value: string, set: (v: string) => void, autoComplete: string) => (
    <label class="field">
      {label}
      <input
        type="password"
        autoComplete={autoComplete}
        required
        minLength={autoComplete === 'new-password' ? 12 : 1}
        maxLength={256}
        value={value}
        onInput={(e) => set((e.target as HTMLInputElement).value)}
      />
    </label>
  );

  return (
    <>
      <h1>Password</h1>
      <form
        onSubmit={submit}
        class="card form-narrow"
        aria-describedby={error ? 'password-error' : undefined}
      >
        <p class="muted">
          At least 12 characters. Changing it signs you out everywhere else, in every browser.
        </p>
        {field('Current password', current, setCurrent, 'current-password')}
        {field('New password', next, setNext, 'new-password')}
        {field('New password again', repeat, setRepeat, 'new-password')}
        {error ? (
          <p id="password-error" class="error-text" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Changing…' : 'Change password'}
        </button>
      </form>
    </>
  );
}
