import type { AdminRole } from '@clp/protocol';
import { useState } from 'preact/hooks';
import { describeFailure, ErrorBox, useNotify } from '../../components/feedback.tsx';
import { ConfirmDialog, Empty, Loading, Pager, SecretOnce, Time } from '../../components/ui.tsx';
import { listTiers } from '../../features/releases/api.ts';
import {
  createApiToken,
  createEnrollmentToken,
  listApiTokens,
  listEnrollmentTokens,
  revokeApiToken,
  revokeEnrollmentToken,
} from '../../features/tokens/api.ts';
import { can } from '../../lib/authorization.ts';
import { useSession } from '../../lib/session.ts';
import { useQuery } from '../../lib/use-query.ts';

const LIMIT = 50;

function EnrollmentTokens() {
  const { session } = useSession();
  const notify = useNotify();
  const manage = can(session.role, 'manageEnrollmentTokens');
  const [offset, setOffset] = useState(0);
  const list = useQuery(`enrollment-tokens:${offset}`, () =>
    listEnrollmentTokens({ query: { limit: LIMIT, offset } }),
  );
  const tiers = useQuery('tiers', () => listTiers());
  const [tier, setTier] = useState('');
  const [tags, setTags] = useState('');
  const [uses, setUses] = useState('1');
  const [days, setDays] = useState('7');
  const [secret, setSecret] = useState<string | undefined>(undefined);
  const [revoking, setRevoking] = useState<string | undefined>(undefined);
  return (
    <section class="card">
      <h2>Enrollment tokens</h2>
      <p class="muted">Machines enroll with one: clpctl enroll SERVER TOKEN.</p>
      {manage ? (
        <form
          class="filters"
          onSubmit={async (e) => {
            e.preventDefault();
            try {
              const made = await createEnrollmentToken({
                body: {
                  tier: tier || tiers.data?.tiers[0]?.name || 'edge',
                  tags: tags
                    .split(',')
                    .map((t) => t.trim())
                    .filter(Boolean),
                  uses: Number(uses),
                  expiresInSeconds: Math.round(Number(days) * 86_400),
                },
              });
              setSecret(made.token);
              notify('ok', `Enrollment token for ${made.tier} made; copy it now`);
              list.reload();
            } catch (failure) {
              notify('error', describeFailure(failure));
            }
          }}
        >
          <label class="field">
            Tier
            <select
              name="token-tier"
              value={tier}
              onChange={(e) => setTier((e.target as HTMLSelectElement).value)}
            >
              {tiers.data?.tiers.map((t) => (
                <option key={t.name} value={t.name}>
                  {t.name}
                </option>
              ))}
            </select>
          </label>
          <label class="field">
            Tags
            <input
              name="token-tags"
              value={tags}
              placeholder="site=paris"
              onInput={(e) => setTags((e.target as HTMLInputElement).value)}
            />
          </label>
          <label class="field">
            Uses
            <input
              name="token-uses"
              type="number"
              min={1}
              value={uses}
              onInput={(e) => setUses((e.target as HTMLInputElement).value)}
            />
          </label>
          <label class="field">
            Expires in (days)
            <input
              name="token-days"
              type="number"
              min={0.05}
              step="any"
              value={days}
              onInput={(e) => setDays((e.target as HTMLInputElement).value)}
            />
          </label>
          <button type="submit" class="primary">
            Create enrollment token
          </button>
        </form>
      ) : null}
      {secret ? <SecretOnce label="Enrollment token" secret={secret} /> : null}
      {list.error ? <ErrorBox error={list.error} retry={list.reload} /> : null}
      {!list.data ? (
        <Loading />
      ) : list.data.tokens.length === 0 ? (
        <Empty>No enrollment token.</Empty>
      ) : (
        <>
          <table class="table" data-testid="enrollment-tokens">
            <thead>
              <tr>
                <th scope="col">Tier</th>
                <th scope="col">Tags</th>
                <th scope="col">Uses left</th>
                <th scope="col">Expires</th>
                <th scope="col">Made by</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {list.data.tokens.map((t) => (
                <tr key={t.id}>
                  <td>{t.tier}</td>
                  <td>{t.tags.join(', ')}</td>
                  <td>{t.usesLeft}</td>
                  <td>
                    <Time iso={t.expiresAt} />
                  </td>
                  <td>{t.createdBy}</td>
                  <td>
                    {t.revoked ? (
                      <span class="badge badge-halted">revoked</span>
                    ) : manage ? (
                      <button type="button" class="danger" onClick={() => setRevoking(t.id)}>
                        Revoke
                      </button>
                    ) : (
                      'valid'
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager offset={offset} limit={LIMIT} total={list.data.total} onChange={setOffset} />
        </>
      )}
      {revoking ? (
        <ConfirmDialog
          title="Revoke this enrollment token?"
          confirmLabel="Revoke"
          danger
          onClose={() => setRevoking(undefined)}
          onConfirm={async () => {
            try {
              await revokeEnrollmentToken({ params: { id: revoking } });
              notify('ok', 'Enrollment token revoked; machines already enrolled keep working');
              list.reload();
            } catch (e) {
              notify('error', describeFailure(e));
            }
          }}
        />
      ) : null}
    </section>
  );
}

const ROLES: AdminRole[] = ['viewer', 'operator', 'release', 'admin'];

function ApiTokens() {
  const notify = useNotify();
  const [offset, setOffset] = useState(0);
  const list = useQuery(`api-tokens:${offset}`, () => listApiTokens({ query: { limit: LIMIT, offset } }));
  const [name, setName] = useState('');
  const [role, setRole] = useState<AdminRole>('viewer');
  const [secret, setSecret] = useState<string | undefined>(undefined);
  const [revoking, setRevoking] = useState<string | undefined>(undefined);
  return (
    <section class="card">
      <h2>API tokens</h2>
      <form
        class="filters"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            const made = await createApiToken({ body: { name: name || 'console', role } });
            setSecret(made.token);
            notify('ok', `API token ${made.name} (${made.role}) made; copy it now`);
            list.reload();
          } catch (failure) {
            notify('error', describeFailure(failure));
          }
        }}
      >
        <label class="field">
          Name
          <input
            name="api-name"
            value={name}
            placeholder="ci-release"
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
        </label>
        <label class="field">
          Role
          <select
            name="api-role"
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
          Create API token
        </button>
      </form>
      {secret ? <SecretOnce label="API token" secret={secret} /> : null}
      {list.error ? <ErrorBox error={list.error} retry={list.reload} /> : null}
      {list.data ? (
        <>
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {list.data.tokens.map((t) => (
                <tr key={t.id}>
                  <td>{t.name}</td>
                  <td>{t.role}</td>
                  <td>
                    <Time iso={t.createdAt} />
                  </td>
                  <td>
                    <Time iso={t.expiresAt} empty="never" />
                  </td>
                  <td>
                    {t.revoked ? (
                      <span class="badge badge-halted">revoked</span>
                    ) : (
                      <button type="button" class="danger" onClick={() => setRevoking(t.id)}>
                        Revoke
                      </button>
                    )}
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
      {revoking ? (
        <ConfirmDialog
          title="Revoke this API token?"
          confirmLabel="Revoke"
          danger
          onClose={() => setRevoking(undefined)}
          onConfirm={async () => {
            try {
              await revokeApiToken({ params: { id: revoking } });
              notify('ok', 'API token revoked; its console sessions end too');
              list.reload();
            } catch (e) {
              notify('error', describeFailure(e));
            }
          }}
        />
      ) : null}
    </section>
  );
}

export function TokensPage() {
  const { session } = useSession();
  return (
    <>
      <h1>Tokens</h1>
      <EnrollmentTokens />
      {can(session.role, 'manageApiTokens') ? <ApiTokens /> : null}
    </>
  );
}
