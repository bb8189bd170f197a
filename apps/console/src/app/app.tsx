import type { SessionView } from '@clp/protocol';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { Link, Route, Router, Switch, useLocation } from 'wouter-preact';
import { ErrorBox, FeedbackProvider } from '../components/feedback.tsx';
import { Loading } from '../components/ui.tsx';
import { getSession, signOut } from '../features/session/api.ts';
import { ApiFailure, setCsrfToken, setServerTime, setUnauthorizedHandler } from '../lib/api-client.ts';
import { can } from '../lib/authorization.ts';
import { SessionContext } from '../lib/session.ts';
import { MachinePage } from './routes/machine.tsx';
import { MachinesPage } from './routes/machines.tsx';
import { OverviewPage } from './routes/overview.tsx';
import { PasswordPage } from './routes/password.tsx';
import { ReleasePage } from './routes/release.tsx';
import { ReleasesPage } from './routes/releases.tsx';
import { RolloutPage } from './routes/rollout.tsx';
import { NewRolloutPage } from './routes/rollout-new.tsx';
import { RolloutsPage } from './routes/rollouts.tsx';
import { SignInPage } from './routes/sign-in.tsx';
import { TokensPage } from './routes/tokens.tsx';
import { UsersPage } from './routes/users.tsx';

function NavLink({ href, children }: { href: string; children: string }) {
  const [location] = useLocation();
  const current = href === '/' ? location === '/' : location.startsWith(href);
  return (
    <Link
      href={href}
      class={current ? 'nav-link current' : 'nav-link'}
      aria-current={current ? 'page' : undefined}
    >
      {children}
    </Link>
  );
}

function Shell({
  session,
  onSignOut,
  onRenew,
}: {
  session: SessionView;
  onSignOut(): void;
  onRenew(session: SessionView): void;
}) {
  return (
    <SessionContext.Provider value={{ session, signOut: onSignOut, renew: onRenew }}>
      <a href="#main" class="skip-link">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Core LivePatch</span>
        <nav aria-label="Sections" class="nav">
          <NavLink href="/">Overview</NavLink>
          <NavLink href="/releases">Releases</NavLink>
          <NavLink href="/rollouts">Rollouts</NavLink>
          <NavLink href="/machines">Machines</NavLink>
          <NavLink href="/tokens">Tokens</NavLink>
          {can(session.role, 'manageUsers') ? <NavLink href="/users">Users</NavLink> : null}
        </nav>
        <span class="who" data-testid="who">
          {session.account === 'user' ? (
            <Link href="/password" title="Change your password">
              {session.name}
            </Link>
          ) : (
            session.name
          )}{' '}
          <span class={`badge badge-role`}>{session.role}</span>
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Switch>
          <Route path="/" component={OverviewPage} />
          <Route path="/releases" component={ReleasesPage} />
          <Route path="/releases/:id" component={ReleasePage} />
          <Route path="/rollouts" component={RolloutsPage} />
          <Route path="/rollouts/new" component={NewRolloutPage} />
          <Route path="/rollouts/:id" component={RolloutPage} />
          <Route path="/machines" component={MachinesPage} />
          <Route path="/machines/:id" component={MachinePage} />
          <Route path="/tokens" component={TokensPage} />
          <Route path="/users" component={UsersPage} />
          <Route path="/password" component={PasswordPage} />
          <Route>
            <h1>Not found</h1>
            <p>
              No console page here. <Link href="/">Go to the overview</Link>.
            </p>
          </Route>
        </Switch>
      </main>
    </SessionContext.Provider>
  );
}

/** Who is signed in decides everything else: no session, the sign-in page; then the pages. */
export function App() {
  const [session, setSession] = useState<SessionView | null | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);

  const accept = useCallback((s: SessionView | null) => {
    setCsrfToken(s?.csrfToken ?? null);
    if (s) setServerTime(s.serverTime);
    setSession(s);
  }, []);

  const load = useCallback(() => {
    setError(undefined);
    getSession().then(accept, (e: unknown) => {
      if (e instanceof ApiFailure && e.status === 401) accept(null);
      else setError(e);
    });
  }, [accept]);

  useEffect(() => {
    setUnauthorizedHandler(() => accept(null));
    load();
    // Keep the server-clock offset and the CSRF token fresh while the console is open.
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') getSession().then(accept, () => {});
    }, 60_000);
    return () => clearInterval(timer);
  }, [accept, load]);

  const end = useCallback(() => {
    signOut().finally(() => accept(null));
  }, [accept]);

  return (
    <FeedbackProvider>
      <Router base="/console">
        {error ? (
          <main id="main">
            <ErrorBox error={error} retry={load} />
          </main>
        ) : session === undefined ? (
          <main id="main">
            <Loading />
          </main>
        ) : session === null ? (
          <SignInPage onSignedIn={accept} />
        ) : (
          <Shell session={session} onSignOut={end} onRenew={accept} />
        )}
      </Router>
    </FeedbackProvider>
  );
}
