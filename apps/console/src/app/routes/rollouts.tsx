import { Link, useSearchParams } from 'wouter-preact';
import { ErrorBox } from '../../components/feedback.tsx';
import { Empty, Loading, Pager } from '../../components/ui.tsx';
import { listRollouts } from '../../features/rollouts/api.ts';
import { RolloutTable } from '../../features/rollouts/rollout-summary.tsx';
import { can } from '../../lib/authorization.ts';
import { useSession } from '../../lib/session.ts';
import { useQuery } from '../../lib/use-query.ts';

const LIMIT = 50;
const STATES = ['', 'active', 'paused', 'halted', 'completed', 'aborted', 'reverted'];

export function RolloutsPage() {
  const { session } = useSession();
  const [params, setParams] = useSearchParams();
  const state = params.get('state') ?? '';
  const offset = Number(params.get('offset') ?? 0);
  const list = useQuery(
    `rollouts:${state}:${offset}`,
    () => listRollouts({ query: { state, offset, limit: LIMIT } }),
    10_000,
  );
  return (
    <>
      <h1>Rollouts</h1>
      <div class="toolbar">
        <label class="field inline">
          State
          <select
            value={state}
            onChange={(e) => {
              const v = (e.target as HTMLSelectElement).value;
              setParams(v ? { state: v } : {});
            }}
          >
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s || 'any'}
              </option>
            ))}
          </select>
        </label>
        {can(session.role, 'createRollout') ? (
          <Link href="/rollouts/new" class="button primary">
            New rollout
          </Link>
        ) : null}
      </div>
      {list.error ? <ErrorBox error={list.error} retry={list.reload} /> : null}
      {!list.data ? (
        <Loading />
      ) : list.data.rollouts.length === 0 ? (
        <Empty>No rollout.</Empty>
      ) : (
        <>
          <RolloutTable rollouts={list.data.rollouts} />
          <Pager
            offset={offset}
            limit={LIMIT}
            total={list.data.total}
            onChange={(o) => setParams({ ...(state ? { state } : {}), offset: String(o) })}
          />
        </>
      )}
    </>
  );
}
