import type { MaintenanceWindowEntry, RolloutProgressView } from '@clp/protocol';
import { Time } from '../../components/ui.tsx';

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/**
 * The windows that may hold machines of this rollout: its tier's, and those of tags (the
 * selector's tags when it names some; a tag's window wins over the tier's).
 */
export function windowsFor(rollout: RolloutProgressView, windows: MaintenanceWindowEntry[]) {
  const tags = rollout.selector.tags ?? [];
  return windows.filter((w) =>
    w.kind === 'tier' ? w.name === rollout.tier : tags.length === 0 || tags.includes(w.name),
  );
}

/**
 * Where the machines the current stage reaches stand: answered or not (the last stage completes
 * only when all have answered, or at `completesBy`), and those held by a maintenance window.
 */
export function RolloutMachines({
  rollout,
  windows,
}: {
  rollout: RolloutProgressView;
  windows: MaintenanceWindowEntry[] | undefined;
}) {
  const m = rollout.machines;
  if (!m) return null;
  const last = rollout.currentStage === rollout.stages.length - 1;
  const shown = windows ? windowsFor(rollout, windows) : [];
  return (
    <section class="card" aria-labelledby="rollout-machines-title">
      <h2 id="rollout-machines-title">Machines of stage {rollout.currentStage + 1}</h2>
      <p data-testid="rollout-machines">
        <strong>
          {m.answered} of {plural(m.targeted, 'targeted machine', 'targeted machines')} answered
        </strong>
        , {m.notAnswered} not answered yet — applied {m.applied}, failed {m.failed}, silent {m.silent}{' '}
        (counted as failed)
      </p>
      {last && rollout.state === 'active' ? (
        <p class="small" data-testid="completion">
          {m.notAnswered === 0
            ? 'Every targeted machine has answered: the rollout completes at its next check.'
            : `It completes once the other ${plural(m.notAnswered, 'machine answers', 'machines answer')}`}
          {m.notAnswered === 0 || !rollout.completesBy ? null : (
            <>
              , or at the latest <Time iso={rollout.completesBy} />
            </>
          )}
          ; until then failures still halt it.
        </p>
      ) : rollout.state === 'completed' ? (
        <p class="small" data-testid="completion">
          Completed; failures reported now still halt it while it offers the release.
        </p>
      ) : null}
      <p data-testid="waiting-for-window" class={m.waitingForWindow > 0 ? '' : 'muted'}>
        {m.waitingForWindow > 0
          ? `${plural(m.waitingForWindow, 'machine waits', 'machines wait')} for its maintenance window (downloaded and verified, applies in the window; not counted as silent)`
          : 'No machine waits for a maintenance window.'}
      </p>
      {shown.length > 0 ? (
        <table class="table compact" data-testid="maintenance-windows">
          <thead>
            <tr>
              <th scope="col">Window of</th>
              <th scope="col">When</th>
              <th scope="col">Set</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((w) => (
              <tr key={`${w.kind}:${w.name}`}>
                <td>
                  {w.kind} {w.name}
                </td>
                <td>
                  <code>{w.window}</code>
                </td>
                <td>
                  <Time iso={w.updatedAt} /> by {w.updatedBy}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted small">No maintenance window is set for tier {rollout.tier} or its tags.</p>
      )}
    </section>
  );
}
