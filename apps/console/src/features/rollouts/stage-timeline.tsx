import type { AuditEntry, RolloutProgressView } from '@clp/protocol';
import { Time } from '../../components/ui.tsx';

/** Each stage with when it started (from the audit log) and when the next may start. */
export function StageTimeline({ rollout, audit }: { rollout: RolloutProgressView; audit: AuditEntry[] }) {
  const started = new Map<number, string>();
  for (const e of audit) {
    if (e.action === 'create') started.set(0, e.at);
    if (e.action === 'advance' && typeof e.details.toStage === 'number') started.set(e.details.toStage, e.at);
  }
  return (
    <ol class="stage-timeline" aria-label="Stages">
      {rollout.stages.map((s, i) => {
        const status = i < rollout.currentStage ? 'done' : i === rollout.currentStage ? 'current' : 'next';
        return (
          <li key={i} class={`stage stage-${status}`} data-testid={`stage-${status}`}>
            <strong>
              Stage {i + 1}: {s.percent} %
            </strong>
            <span class="muted small">at least {Math.round(s.minDurationSeconds / 60)} min</span>
            {started.get(i) ? (
              <span class="small">
                started <Time iso={started.get(i)} />
              </span>
            ) : i === rollout.currentStage + 1 && rollout.nextStageAt ? (
              <span class="small">
                may start <Time iso={rollout.nextStageAt} />
              </span>
            ) : (
              <span class="muted small">not started</span>
            )}
          </li>
        );
      })}
    </ol>
  );
}
