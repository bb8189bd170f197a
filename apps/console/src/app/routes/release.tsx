import { useState } from 'preact/hooks';
import { Link, useParams } from 'wouter-preact';
import { describeFailure, ErrorBox, useNotify } from '../../components/feedback.tsx';
import { bytes, ConfirmDialog, Empty, Loading, Time } from '../../components/ui.tsx';
import { getRelease, listTiers, promoteRelease, yankRelease } from '../../features/releases/api.ts';
import { listRollouts } from '../../features/rollouts/api.ts';
import { RolloutTable } from '../../features/rollouts/rollout-summary.tsx';
import { can } from '../../lib/authorization.ts';
import { useSession } from '../../lib/session.ts';
import { useQuery } from '../../lib/use-query.ts';

function describeAction(a: Record<string, unknown>): string {
  const kind = String(a.kind ?? a.type ?? 'action');
  const detail = ['action', 'path', 'name', 'version', 'unit', 'command', 'when']
    .map((k) => (a[k] !== undefined ? `${k}=${String(a[k])}` : ''))
    .filter(Boolean)
    .join(' ');
  return `${kind} ${detail}`.trim();
}

export function ReleasePage() {
  const { id } = useParams<{ id: string }>();
  const { session } = useSession();
  const notify = useNotify();
  const release = useQuery(`release:${id}`, () => getRelease({ params: { id } }));
  const rollouts = useQuery(`release-rollouts:${id}`, () =>
    listRollouts({ query: { releaseId: id, limit: 50 } }),
  );
  const tiers = useQuery('tiers', () => listTiers());
  const [dialog, setDialog] = useState<'promote' | 'yank' | undefined>(undefined);
  const [tier, setTier] = useState('');

  if (release.error) return <ErrorBox error={release.error} retry={release.reload} />;
  const r = release.data;
  if (!r) return <Loading />;
  const meta = r.meta as Record<string, unknown>;
  const actions = Array.isArray(meta.actions) ? (meta.actions as Record<string, unknown>[]) : [];
  const mayPromote = can(session.role, 'promoteRelease') && !r.yanked;
  const mayYank = can(session.role, 'yankRelease') && !r.yanked;
  const open = tiers.data?.tiers.filter((t) => !r.tiers.includes(t.name)) ?? [];
  return (
    <>
      <p class="crumbs">
        <Link href="/releases">Releases</Link> /
      </p>
      <h1>
        {r.name} {r.yanked ? <span class="badge badge-halted">yanked</span> : null}
      </h1>
      <div class="toolbar">
        {can(session.role, 'promoteRelease') ? (
          <>
            <label class="field inline">
              Tier
              <select
                value={tier}
                onChange={(e) => setTier((e.target as HTMLSelectElement).value)}
                disabled={!mayPromote}
              >
                <option value="">choose…</option>
                {open.map((t) => (
                  <option key={t.name} value={t.name}>
                    {t.name}
                  </option>
                ))}
              </select>
            </label>
            <button type="button" disabled={!mayPromote || !tier} onClick={() => setDialog('promote')}>
              Promote
            </button>
          </>
        ) : null}
        {can(session.role, 'yankRelease') ? (
          <button type="button" class="danger" disabled={!mayYank} onClick={() => setDialog('yank')}>
            Yank
          </button>
        ) : null}
        {can(session.role, 'createRollout') && !r.yanked ? (
          <Link href={`/rollouts/new?release=${r.id}`} class="button primary">
            Roll out…
          </Link>
        ) : null}
      </div>
      <dl class="facts">
        <dt>sha256</dt>
        <dd>
          <code>{r.sha256}</code>
        </dd>
        <dt>Series / version</dt>
        <dd>
          {r.series} / {r.version}
        </dd>
        <dt>Architecture</dt>
        <dd>{r.arch}</dd>
        <dt>Size</dt>
        <dd>{bytes(r.size)}</dd>
        <dt>Signer key</dt>
        <dd>
          <code>{r.signerKeyId}</code>
        </dd>
        <dt>Tiers</dt>
        <dd>{r.tiers.join(' → ') || 'not promoted'}</dd>
        <dt>Description</dt>
        <dd>{String(meta.description ?? '') || <span class="muted">none</span>}</dd>
        <dt>Uploaded</dt>
        <dd>
          <Time iso={r.uploadedAt} /> by {r.uploadedBy}
        </dd>
        {r.yankedAt ? (
          <>
            <dt>Yanked</dt>
            <dd>
              <Time iso={r.yankedAt} />
            </dd>
          </>
        ) : null}
      </dl>
      <section class="card">
        <h2>Actions</h2>
        {actions.length === 0 ? (
          <Empty>No declarative action (a script-only patch).</Empty>
        ) : (
          <ol class="actions-list">
            {actions.map((a, i) => (
              <li key={i}>
                <code>{describeAction(a)}</code>
              </li>
            ))}
          </ol>
        )}
      </section>
      <section class="card">
        <h2>Entries</h2>
        {r.entries.length === 0 ? (
          <Empty>Not recorded (uploaded before entries were kept, or an empty archive).</Empty>
        ) : (
          <table class="table compact">
            <thead>
              <tr>
                <th scope="col">Entry</th>
                <th scope="col">Size</th>
                <th scope="col">Mode</th>
              </tr>
            </thead>
            <tbody>
              {r.entries.map((e) => (
                <tr key={e.name}>
                  <td>
                    <code>{e.name}</code>
                  </td>
                  <td>{bytes(e.size)}</td>
                  <td>
                    <code>{(e.mode & 0o7777).toString(8).padStart(4, '0')}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section class="card">
        <h2>Rollouts</h2>
        {rollouts.data && rollouts.data.rollouts.length > 0 ? (
          <RolloutTable rollouts={rollouts.data.rollouts} />
        ) : (
          <Empty>No rollout of this release yet.</Empty>
        )}
      </section>
      {dialog === 'promote' ? (
        <ConfirmDialog
          title={`Promote ${r.name} to ${tier}?`}
          confirmLabel="Promote"
          onClose={() => setDialog(undefined)}
          onConfirm={async () => {
            try {
              await promoteRelease({ params: { id: r.id }, body: { tier } });
              notify('ok', `${r.name} promoted to ${tier}`);
              release.reload();
            } catch (e) {
              notify('error', describeFailure(e));
            }
          }}
        >
          <p>Rollouts to {tier} may then offer it.</p>
        </ConfirmDialog>
      ) : null}
      {dialog === 'yank' ? (
        <ConfirmDialog
          title={`Yank ${r.name}?`}
          confirmLabel="Yank"
          danger
          reason
          onClose={() => setDialog(undefined)}
          onConfirm={async (reason) => {
            try {
              await yankRelease({ params: { id: r.id }, body: reason ? { reason } : {} });
              notify('ok', `${r.name} yanked: no machine is offered it any more`);
              release.reload();
            } catch (e) {
              notify('error', describeFailure(e));
            }
          }}
        >
          <p>No machine will be offered it any more; machines that have it keep it.</p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}
