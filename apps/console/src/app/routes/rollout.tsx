import type { RolloutProgressView } from '@clp/protocol';
import { useState } from 'preact/hooks';
import { Link, useParams } from 'wouter-preact';
import { Chart } from '../../components/chart.tsx';
import { describeFailure, ErrorBox, useNotify } from '../../components/feedback.tsx';
import { ConfirmDialog, Empty, Loading, Pager, percent, StateBadge, Time } from '../../components/ui.tsx';
import {
  actOnRollout,
  getRollout,
  getRolloutAudit,
  getRolloutTimeline,
  listMaintenanceWindows,
  listReports,
  type RolloutAction,
} from '../../features/rollouts/api.ts';
import { RolloutMachines } from '../../features/rollouts/rollout-machines.tsx';
import { StageTimeline } from '../../features/rollouts/stage-timeline.tsx';
import { can } from '../../lib/authorization.ts';
import { useSession } from '../../lib/session.ts';
import { useQuery } from '../../lib/use-query.ts';

/** Which actions each state allows (the server's rule; it refuses the rest with CLP_E_ROLLOUT_STATE). */
const ACTIONS: Array<{
  action: RolloutAction;
  label: string;
  from: string[];
  /** Shown only when the rollout waits on this (an approval gate). */
  when?: (r: RolloutProgressView) => boolean;
  danger?: boolean;
  reason?: 'required';
  help: string;
}> = [
  {
    action: 'approve',
    label: 'Approve stage',
    from: ['active'],
    when: (r) => r.gate?.kind === 'approval',
    reason: 'required',
    help: 'The current stage may end once its time and its applied machines are there; the audit log keeps who approved and why.',
  },
  {
    action: 'pause',
    label: 'Pause',
    from: ['active'],
    help: 'No new machine is offered the release; stages stop.',
  },
  {
    action: 'resume',
    label: 'Resume',
    from: ['paused'],
    help: 'The current stage starts its minimum time again.',
  },
  {
    action: 'abort',
    label: 'Abort',
    from: ['active', 'paused', 'halted'],
    danger: true,
    help: 'It offers nothing more; machines that installed the release keep it.',
  },
  {
    action: 'retry-failed',
    label: 'Retry failed',
    from: ['active', 'completed', 'halted'],
    help: 'The machines whose last outcome was a failure (or silence) are offered the release again; a halted rollout becomes active at its stage.',
  },
  {
    action: 'revert',
    label: 'Revert',
    from: ['active', 'paused', 'halted', 'completed', 'aborted'],
    danger: true,
    help: 'Machines that have the release installed take it back at their next poll.',
  },
];

/** The failure-rate chart's top (in %): above the threshold and the highest rate seen, at most 100. */
function rateCeiling(rates: number[], threshold: number): number {
  return Math.min(100, Math.max(1, threshold * 150, ...rates.map((r) => r * 110)));
}

const MOVING = new Set(['active', 'paused', 'halted']);
const FAILED_LIMIT = 20;

export function RolloutPage() {
  const { id } = useParams<{ id: string }>();
  const { session } = useSession();
  const notify = useNotify();
  const rollout = useQuery(`rollout:${id}`, () => getRollout({ params: { id } }), 5000);
  const moving = rollout.data ? MOVING.has(rollout.data.state) : true;
  const refresh = moving ? 5000 : 60_000;
  const timeline = useQuery(`timeline:${id}`, () => getRolloutTimeline({ params: { id } }), refresh);
  const audit = useQuery(`audit:${id}`, () => getRolloutAudit({ params: { id } }), refresh);
  const windows = useQuery('maintenance-windows', () => listMaintenanceWindows(), refresh);
  const [failedOffset, setFailedOffset] = useState(0);
  const failed = useQuery(
    `failed:${id}:${failedOffset}`,
    () =>
      listReports({ query: { rollout: id, status: 'failed', limit: FAILED_LIMIT, offset: failedOffset } }),
    refresh,
  );
  const [acting, setActing] = useState<(typeof ACTIONS)[number] | undefined>(undefined);
  const [openLog, setOpenLog] = useState<string | undefined>(undefined);

  if (rollout.error && !rollout.data) return <ErrorBox error={rollout.error} retry={rollout.reload} />;
  const r = rollout.data;
  if (!r) return <Loading />;
  const t = timeline.data;
  const x = t ? t.points.map((p) => Date.parse(p.at) / 1000) : [];
  const steer = can(session.role, 'steerRollout');
  return (
    <>
      <p class="crumbs">
        <Link href="/rollouts">Rollouts</Link> /
      </p>
      <h1>
        <Link href={`/releases/${r.releaseId}`}>{r.releaseName}</Link> to {r.tier}{' '}
        <StateBadge state={r.state} />
      </h1>
      {r.haltReason ? (
        <p class="error-box" role="alert" data-testid="halt-reason">
          Halted by itself: {r.haltReason}. Look at the failed machines below, then resume, abort or revert.
        </p>
      ) : null}
      {steer ? (
        <div class="toolbar" role="toolbar" aria-label="Rollout actions">
          {ACTIONS.filter((a) => !a.when || a.when(r)).map((a) => (
            <button
              key={a.action}
              type="button"
              class={a.danger ? 'danger' : ''}
              disabled={!a.from.includes(r.state)}
              title={
                a.from.includes(r.state)
                  ? a.help
                  : `${a.label} works from ${a.from.join(', ')}; this rollout is ${r.state}`
              }
              onClick={() => setActing(a)}
            >
              {a.label}
            </button>
          ))}
        </div>
      ) : null}
      <StageTimeline rollout={r} audit={audit.data?.entries ?? []} />
      <dl class="facts">
        <dt>Offered to</dt>
        <dd data-testid="offered">
          {r.percent} % of the matching machines (stage {r.currentStage + 1} of {r.stages.length})
        </dd>
        <dt>Reports</dt>
        <dd data-testid="counters">
          applied {r.counters.applied}, failed {r.counters.failed}, silent {r.counters.silent}, reverted{' '}
          {r.counters.reverted}, revert failed {r.counters.revertFailed}
        </dd>
        {r.gate && r.state === 'active' ? (
          <>
            <dt>Waiting on</dt>
            <dd data-testid="gate">{r.gate.reason}</dd>
          </>
        ) : null}
        <dt>Failure rate</dt>
        <dd
          class={r.failureRate >= r.failureThreshold.maxFailureRate ? 'bad' : ''}
          data-testid="failure-rate"
        >
          {percent(r.failureRate)} — halts at {percent(r.failureThreshold.maxFailureRate)} once{' '}
          {r.failureThreshold.minReports} machines have an outcome (silent ones count as failed)
        </dd>
        <dt>Selector</dt>
        <dd>
          {[
            r.selector.tags?.length ? `tags ${r.selector.tags.join(', ')}` : '',
            r.selector.arch?.length ? `arch ${r.selector.arch.join(', ')}` : '',
            r.selector.os?.length ? `OS ${r.selector.os.join(', ')}` : '',
          ]
            .filter(Boolean)
            .join('; ') || 'every machine of the tier'}
        </dd>
        <dt>Started</dt>
        <dd>
          <Time iso={r.createdAt} /> by {r.createdBy}
        </dd>
      </dl>
      <RolloutMachines rollout={r} windows={windows.data?.windows} />
      <div class="columns">
        <section class="card">
          <h2>Applied and failed over time</h2>
          {t ? (
            <Chart
              label={`Machines over time: ${r.counters.applied} applied, ${r.counters.failed} failed, ${r.counters.silent} silent`}
              x={x}
              series={[
                { label: 'applied (total)', color: '--ok' },
                { label: 'failed (total)', color: '--bad' },
                { label: 'silent (total)', color: '--warn', dash: true },
              ]}
              data={[
                t.points.map((p) => p.appliedTotal),
                t.points.map((p) => p.failedTotal),
                t.points.map((p) => p.silentTotal),
              ]}
            />
          ) : (
            <Loading />
          )}
        </section>
        <section class="card">
          <h2>Failure rate against the halt threshold</h2>
          {t ? (
            <Chart
              label={`Failure rate ${percent(r.failureRate)}; the rollout halts at ${percent(t.maxFailureRate)}`}
              x={x}
              yRange={[
                0,
                rateCeiling(
                  t.points.map((p) => p.failureRate),
                  t.maxFailureRate,
                ),
              ]}
              series={[
                { label: 'failure rate %', color: '--bad' },
                { label: 'halt threshold %', color: '--warn', dash: true },
              ]}
              data={[t.points.map((p) => p.failureRate * 100), t.points.map(() => t.maxFailureRate * 100)]}
            />
          ) : (
            <Loading />
          )}
        </section>
      </div>
      <section class="card">
        <h2>Machines that failed</h2>
        {!failed.data ? (
          <Loading />
        ) : failed.data.reports.length === 0 ? (
          <Empty>No failure reported.</Empty>
        ) : (
          <>
            <table class="table" data-testid="failed-machines">
              <thead>
                <tr>
                  <th scope="col">Machine</th>
                  <th scope="col">Error code</th>
                  <th scope="col">When</th>
                  <th scope="col">Log</th>
                </tr>
              </thead>
              <tbody>
                {failed.data.reports.map((f) => (
                  <tr key={f.id}>
                    <td>
                      <Link href={`/machines/${f.machineId}`}>{f.hostname ?? f.machineId}</Link>
                    </td>
                    <td>
                      <code>{f.errorCode ?? 'none'}</code>
                    </td>
                    <td>
                      <Time iso={f.receivedAt} />
                    </td>
                    <td>
                      {f.log ? (
                        <button
                          type="button"
                          class="link"
                          onClick={() => setOpenLog(openLog === f.id ? undefined : f.id)}
                        >
                          {openLog === f.id ? 'Hide log' : 'Show log'}
                        </button>
                      ) : (
                        <span class="muted">none</span>
                      )}
                      {openLog === f.id ? <pre class="log">{f.log}</pre> : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager
              offset={failedOffset}
              limit={FAILED_LIMIT}
              total={failed.data.total}
              onChange={setFailedOffset}
            />
          </>
        )}
      </section>
      <section class="card">
        <h2>Audit log</h2>
        {audit.data ? (
          <table class="table compact" data-testid="audit">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">What</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {[...audit.data.entries].reverse().map((e) => (
                <tr key={e.id}>
                  <td>
                    <Time iso={e.at} />
                  </td>
                  <td>{e.actor}</td>
                  <td>{e.action}</td>
                  <td>
                    <code class="small">{JSON.stringify(e.details)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Loading />
        )}
      </section>
      {acting ? (
        <ConfirmDialog
          title={`${acting.label} this rollout?`}
          confirmLabel={acting.label}
          danger={acting.danger}
          reason={acting.reason ?? true}
          onClose={() => setActing(undefined)}
          onConfirm={async (reason) => {
            try {
              const after = await actOnRollout(r.id, acting.action, reason);
              notify('ok', `Rollout is now ${after.state}`);
              rollout.reload();
              audit.reload();
            } catch (e) {
              notify('error', describeFailure(e));
            }
          }}
        >
          <p>{acting.help}</p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}
