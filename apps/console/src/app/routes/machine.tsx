import { useState } from 'preact/hooks';
import { Link, useParams } from 'wouter-preact';
import { describeFailure, ErrorBox, useNotify } from '../../components/feedback.tsx';
import { ConfirmDialog, Empty, Loading, Pager, Time } from '../../components/ui.tsx';
import { explainMachine, getMachine, revokeMachine } from '../../features/machines/api.ts';
import { listReleases } from '../../features/releases/api.ts';
import { listReports } from '../../features/rollouts/api.ts';
import { can } from '../../lib/authorization.ts';
import { useSession } from '../../lib/session.ts';
import { useQuery } from '../../lib/use-query.ts';

const REPORTS = 20;

function Why({ machineId }: { machineId: string }) {
  const releases = useQuery('releases-for-why', () => listReleases({ query: { limit: 200 } }));
  const [release, setRelease] = useState('');
  const why = useQuery(`why:${machineId}:${release}`, () =>
    release ? explainMachine({ params: { id: machineId }, query: { release } }) : Promise.resolve(undefined),
  );
  return (
    <section class="card" aria-labelledby="why-title">
      <h2 id="why-title">Why is a release (not) offered here?</h2>
      <label class="field inline">
        Release
        <select
          name="why-release"
          value={release}
          onChange={(e) => setRelease((e.target as HTMLSelectElement).value)}
        >
          <option value="">choose…</option>
          {releases.data?.releases.map((r) => (
            <option key={r.id} value={r.id}>
              {r.name}
            </option>
          ))}
        </select>
      </label>
      {why.error ? <ErrorBox error={why.error} /> : null}
      {why.data ? (
        <div data-testid="why">
          <p class={`verdict verdict-${why.data.verdict}`}>
            <strong>{why.data.verdict}</strong>: {why.data.summary}
          </p>
          {why.data.rollouts.length > 0 ? (
            <table class="table compact">
              <thead>
                <tr>
                  <th scope="col">Rollout</th>
                  <th scope="col">State</th>
                  <th scope="col">Rule</th>
                  <th scope="col">Reason</th>
                </tr>
              </thead>
              <tbody>
                {why.data.rollouts.map((d) => (
                  <tr key={d.rolloutId}>
                    <td>
                      <Link href={`/rollouts/${d.rolloutId}`}>{d.tier}</Link>
                    </td>
                    <td>{d.state}</td>
                    <td>
                      <code>{d.rule}</code>
                    </td>
                    <td>{d.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
        </div>
      ) : null}
    </section>
  );
}

export function MachinePage() {
  const { id } = useParams<{ id: string }>();
  const { session } = useSession();
  const notify = useNotify();
  const machine = useQuery(`machine:${id}`, () => getMachine({ params: { id } }), 30_000);
  const [offset, setOffset] = useState(0);
  const reports = useQuery(`machine-reports:${id}:${offset}`, () =>
    listReports({ query: { machine: id, limit: REPORTS, offset } }),
  );
  const [confirm, setConfirm] = useState(false);
  const [openLog, setOpenLog] = useState<string | undefined>(undefined);
  if (machine.error && !machine.data) return <ErrorBox error={machine.error} retry={machine.reload} />;
  const m = machine.data;
  if (!m) return <Loading />;
  return (
    <>
      <p class="crumbs">
        <Link href="/machines">Machines</Link> /
      </p>
      <h1>
        {m.hostname} {m.revoked ? <span class="badge badge-halted">revoked</span> : null}
      </h1>
      {can(session.role, 'revokeMachine') ? (
        <div class="toolbar">
          <button type="button" class="danger" disabled={m.revoked} onClick={() => setConfirm(true)}>
            Revoke credential
          </button>
        </div>
      ) : null}
      <dl class="facts">
        <dt>Id</dt>
        <dd>
          <code>{m.id}</code>
        </dd>
        <dt>Tier</dt>
        <dd>{m.tier}</dd>
        <dt>Tags</dt>
        <dd>{m.tags.join(', ') || <span class="muted">none</span>}</dd>
        <dt>OS / arch</dt>
        <dd>
          {m.os.id} {m.os.version} / {m.arch}
        </dd>
        <dt>Agent</dt>
        <dd>{m.agentVersion ?? <span class="muted">unknown</span>}</dd>
        <dt>Enrolled</dt>
        <dd>
          <Time iso={m.enrolledAt} />
        </dd>
        <dt>Last seen</dt>
        <dd>
          <Time iso={m.lastSeenAt} />
        </dd>
      </dl>
      <section class="card">
        <h2>Installed patches</h2>
        {m.installed.length === 0 ? (
          <Empty>None reported.</Empty>
        ) : (
          <ul>
            {m.installed.map((p) => (
              <li key={String(p.sha256)}>
                <code>{String(p.name)}</code>{' '}
                {p.state === 'failed' ? <span class="badge badge-halted">failed, rolled back</span> : null}
              </li>
            ))}
          </ul>
        )}
      </section>
      <Why machineId={m.id} />
      <section class="card">
        <h2>Report history</h2>
        {!reports.data ? (
          <Loading />
        ) : reports.data.reports.length === 0 ? (
          <Empty>No report yet.</Empty>
        ) : (
          <>
            <table class="table">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Patch</th>
                  <th scope="col">Status</th>
                  <th scope="col">Error</th>
                  <th scope="col">Log</th>
                </tr>
              </thead>
              <tbody>
                {reports.data.reports.map((r) => (
                  <tr key={r.id}>
                    <td>
                      <Time iso={r.at} />
                    </td>
                    <td>{r.rolloutId ? <Link href={`/rollouts/${r.rolloutId}`}>{r.name}</Link> : r.name}</td>
                    <td>{r.status}</td>
                    <td>{r.errorCode ? <code>{r.errorCode}</code> : null}</td>
                    <td>
                      {r.log ? (
                        <button
                          type="button"
                          class="link"
                          onClick={() => setOpenLog(openLog === r.id ? undefined : r.id)}
                        >
                          {openLog === r.id ? 'Hide log' : 'Show log'}
                        </button>
                      ) : null}
                      {openLog === r.id ? <pre class="log">{r.log}</pre> : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager offset={offset} limit={REPORTS} total={reports.data.total} onChange={setOffset} />
          </>
        )}
      </section>
      {confirm ? (
        <ConfirmDialog
          title={`Revoke ${m.hostname}?`}
          confirmLabel="Revoke"
          danger
          onClose={() => setConfirm(false)}
          onConfirm={async () => {
            try {
              await revokeMachine({ params: { id: m.id } });
              notify('ok', `${m.hostname} revoked: its next call gets 401 until it enrolls again`);
              machine.reload();
            } catch (e) {
              notify('error', describeFailure(e));
            }
          }}
        >
          <p>Its credential stops working at once; it may enroll again with a new enrollment token.</p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}
