import type { RolloutProgressView } from '@clp/protocol';
import { Link } from 'wouter-preact';
import { percent, StateBadge, Time } from '../../components/ui.tsx';

/** One line per rollout: release, tier, state, stage and progress. */
export function RolloutTable({ rollouts }: { rollouts: RolloutProgressView[] }) {
  return (
    <table class="table">
      <thead>
        <tr>
          <th scope="col">Release</th>
          <th scope="col">Tier</th>
          <th scope="col">State</th>
          <th scope="col">Stage</th>
          <th scope="col">Applied / failed</th>
          <th scope="col">Failure rate</th>
          <th scope="col">Started</th>
        </tr>
      </thead>
      <tbody>
        {rollouts.map((r) => (
          <tr key={r.id}>
            <td>
              <Link href={`/rollouts/${r.id}`}>{r.releaseName}</Link>
            </td>
            <td>{r.tier}</td>
            <td>
              <StateBadge state={r.state} />
            </td>
            <td>
              {r.currentStage + 1} of {r.stages.length} ({r.percent} %)
              <progress max={100} value={r.percent} aria-label={`${r.percent} % offered`} />
            </td>
            <td>
              {r.counters.applied} / {r.counters.failed}
            </td>
            <td class={r.failureRate >= r.failureThreshold.maxFailureRate ? 'bad' : ''}>
              {percent(r.failureRate)}{' '}
              <span class="muted small">(halts at {percent(r.failureThreshold.maxFailureRate)})</span>
            </td>
            <td>
              <Time iso={r.createdAt} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
