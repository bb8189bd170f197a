import type { AdminRole } from '@clp/protocol';
import { useState } from 'preact/hooks';
import { describeFailure, ErrorBox, useNotify } from '../../components/feedback.tsx';
import { Loading, Pager, Time } from '../../components/ui.tsx';
import { createUser, editUser, listUsers } from '../../features/users/api.ts';
import { can } from '../../lib/authorization.ts';
import { useSession } from '../../lib/session.ts';
import { useQuery } from '../../lib/use-query.ts';

const ROLES: AdminRole[] = ['viewer', 'operator', 'release', 'admin'];
const LIMIT = 50;

export function UsersPage() {
  const { session } = useSession();
  const notify = useNotify();
  const [offset, setOffset] = useState(0);
  const list = useQuery(`users:${offset}`, () =>
    can(session.role, 'manageUsers')
      ? listUsers({ query: { limit: LIMIT, offset } })
      : Promise.resolve(undefined),
  );
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<AdminRole>('viewer');
  if (!can(session.role, 'manageUsers')) return <p class="error-text">Only admins manage users.</p>;
  return (
    <>
      <h1>Users</h1>
      <form
        class="card filters"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            const made = await createUser({ body: { username, password, role } });
            notify('ok', `User ${made.username} (${made.role}) created`);
            setUsername('');
            setPassword('');
            list.reload();
          } catch (failure) {
            notify('error', describeFailure(failure));
          }
        }}
      >
        <label class="field">
          User name
          <input
            name="new-username"
            value={username}
            required
            onInput={(e) => setUsername((e.target as HTMLInputElement).value)}
          />
        </label>
        <label class="field">
          Password (at least 12 characters)
          <input
            name="new-password"
            type="password"
            autoComplete="new-password"
            minLength={12}
            required
            value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
        </label>
        <label class="field">
          Role
          <select
            name="new-role"
            value={role}
            onChange={(e) => setRole((e.target as HTMLSelectElement).value as AdminRole)}
          >
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" class="primary">
          Create user
        </button>
      </form>
      {list.error ? <ErrorBox error={list.error} retry={list.reload} /> : null}
      {list.data ? (
        <>
          <table class="table">
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col">Created</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {list.data.users.map((u) => (
                <tr key={u.id}>
                  <td>{u.username}</td>
                  <td>
                    <select
                      aria-label={`Role of ${u.username}`}
                      value={u.role}
                      onChange={async (e) => {
                        try {
                          await editUser({
                            params: { id: u.id },
                            body: { role: (e.target as HTMLSelectElement).value as AdminRole },
                          });
                          notify('ok', `${u.username} is now ${(e.target as HTMLSelectElement).value}`);
                          list.reload();
                        } catch (failure) {
                          notify('error', describeFailure(failure));
                        }
                      }}
                    >
                      {ROLES.map((r) => (
                        <option key={r} value={r}>
                          {r}
                        </option>
                      ))}
                    </select>
                  </td>
                  <td>
                    <Time iso={u.createdAt} /> by {u.createdBy}
                  </td>
                  <td>
                    <button
                      type="button"
                      class={u.disabled ? '' : 'danger'}
                      onClick={async () => {
                        try {
                          await editUser({ params: { id: u.id }, body: { disabled: !u.disabled } });
                          notify(
                            'ok',
                            `${u.username} ${u.disabled ? 'enabled' : 'disabled; their sessions ended'}`,
                          );
                          list.reload();
                        } catch (failure) {
                          notify('error', describeFailure(failure));
                        }
                      }}
                    >
                      {u.disabled ? 'Enable' : 'Disable'}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager offset={offset} limit={LIMIT} total={list.data.total} onChange={setOffset} />
        </>
      ) : (
        <Loading />
      )}
    </>
  );
}
