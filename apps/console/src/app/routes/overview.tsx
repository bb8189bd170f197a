import { Link } from 'wouter-preact';
import { Chart } from '../../components/chart.tsx';
import { ErrorBox } from '../../components/feedback.tsx';
import { Empty, Loading, Time } from '../../components/ui.tsx';
import { getOverview } from '../../features/overview/api.ts';
import { RolloutTable } from '../../features/rollouts/rollout-summary.tsx';
import { useQuery } from '../../lib/use-query.ts';

export function OverviewPage() {
  const q = useQuery('overview', () => getOverview(), 15_000);
  if (q.error && !q.data) return <ErrorBox error={q.error} retry={q.reload} />;
  const o = q.data;
  if (!o) return <Loading />;
  const m = o.machines;
  return (
    <>
      <h1>Overview</h1>
      <section class="tiles" aria-label="Machines">
        <Link href="/machines?revoked=false" class="tile">
          <span class="tile-value" data-testid="enrolled">
            {m.enrolled.toLocaleString('en')}
          </span>
          <span>machines enrolled</span>
        </Link>
        <Link href="/machines?seen=day" class="tile">
          <span class="tile-value">{m.seenLastDay.toLocaleString('en')}</span>
          <span>seen in the last day</span>
        </Link>
        <Link href="/machines?seen=stale" class={m.notSeenForWeek > 0 ? 'tile warn' : 'tile'}>
          <span class="tile-value">{m.notSeenForWeek.toLocaleString('en')}</span>
          <span>not seen for a week</span>
        </Link>
        <Link href="/machines?revoked=true" class="tile">
          <span class="tile-value">{m.revoked.toLocaleString('en')}</span>
          <span>revoked</span>
        </Link>
      </section>
      <div class="columns">
        <section class="card">
          <h2>Machines per installed patch</h2>
          {o.installed.length === 0 ? (
            <Empty>No machine reports an installed patch yet.</Empty>
          ) : (
            <>
              <Chart
                label={`Machines per installed patch: ${o.installed.map((p) => `${p.name} ${p.installed}`).join(', ')}`}
                time={false}
                x={o.installed.map((_p, i) => i)}
                xLabels={o.installed.map((p) => p.name)}
                series={[
                  { label: 'installed', color: '--ok', bars: true },
                  { label: 'failed', color: '--bad', bars: true },
                ]}
                data={[o.installed.map((p) => p.installed), o.installed.map((p) => p.failed)]}
              />
              <table class="table compact">
                <thead>
                  <tr>
                    <th scope="col">Patch</th>
                    <th scope="col">Installed</th>
                    <th scope="col">Failed</th>
                  </tr>
                </thead>
                <tbody>
                  {o.installed.map((p) => (
                    <tr key={p.sha256}>
                      <td>
                        <Link href={`/machines?installed=${p.sha256}`}>{p.name}</Link>
                      </td>
                      <td>{p.installed.toLocaleString('en')}</td>
                      <td>{p.failed ? <Link href={`/machines?failed=${p.sha256}`}>{p.failed}</Link> : 0}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </section>
        <section class="card">
          <h2>Recent failures</h2>
          {o.recentFailures.length === 0 ? (
            <Empty>No failed reports.</Empty>
          ) : (
            <table class="table compact">
              <thead>
                <tr>
                  <th scope="col">Machine</th>
                  <th scope="col">Patch</th>
                  <th scope="col">Error</th>
                  <th scope="col">When</th>
                </tr>
              </thead>
              <tbody>
                {o.recentFailures.map((f) => (
                  <tr key={f.reportId}>
                    <td>
                      <Link href={`/machines/${f.machineId}`}>{f.hostname ?? f.machineId}</Link>
                    </td>
                    <td>{f.rolloutId ? <Link href={`/rollouts/${f.rolloutId}`}>{f.name}</Link> : f.name}</td>
                    <td>
                      <code>{f.errorCode ?? f.status}</code>
                    </td>
                    <td>
                      <Time iso={f.receivedAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      </div>
      <section class="card">
        <h2>Rollouts in progress</h2>
        {o.rollouts.length === 0 ? (
          <Empty>
            No rollout is active, paused or halted. <Link href="/rollouts/new">Start one</Link>.
          </Empty>
        ) : (
          <RolloutTable rollouts={o.rollouts} />
        )}
      </section>
    </>
  );
}
