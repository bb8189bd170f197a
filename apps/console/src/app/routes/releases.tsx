import { useState } from 'preact/hooks';
import { Link, useSearchParams } from 'wouter-preact';
import { ErrorBox, useNotify } from '../../components/feedback.tsx';
import { bytes, Empty, Loading, Pager, Time } from '../../components/ui.tsx';
import { listReleases, listTiers } from '../../features/releases/api.ts';
import { UploadDrop } from '../../features/releases/upload-drop.tsx';
import { can } from '../../lib/authorization.ts';
import { useSession } from '../../lib/session.ts';
import { useQuery } from '../../lib/use-query.ts';

const LIMIT = 50;

export function ReleasesPage() {
  const { session } = useSession();
  const notify = useNotify();
  const [params, setParams] = useSearchParams();
  const q = params.get('q') ?? '';
  const tier = params.get('tier') ?? '';
  const yanked = params.get('yanked') ?? '';
  const offset = Number(params.get('offset') ?? 0);
  const [text, setText] = useState(q);
  const key = JSON.stringify({ q, tier, yanked, offset });
  const list = useQuery(key, () => listReleases({ query: { q, tier, yanked, offset, limit: LIMIT } }));
  const tiers = useQuery('tiers', () => listTiers());
  const set = (changes: Record<string, string>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    if (!('offset' in changes)) next.delete('offset');
    setParams(next);
  };
  return (
    <>
      <h1>Releases</h1>
      {can(session.role, 'uploadRelease') ? (
        <UploadDrop
          onUploaded={(r) => {
            notify('ok', `Release ${r.name} uploaded`);
            list.reload();
          }}
        />
      ) : null}
      <form
        class="filters"
        aria-label="Filters"
        onSubmit={(e) => {
          e.preventDefault();
          set({ q: text });
        }}
      >
        <label class="field">
          Name
          <input
            name="q"
            value={text}
            placeholder="CLP125…"
            onInput={(e) => setText((e.target as HTMLInputElement).value)}
          />
        </label>
        <label class="field">
          Tier
          <select
            name="tier"
            value={tier}
            onChange={(e) => set({ tier: (e.target as HTMLSelectElement).value })}
          >
            <option value="">any</option>
            {tiers.data?.tiers.map((t) => (
              <option key={t.name} value={t.name}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          Yanked
          <select
            name="yanked"
            value={yanked}
            onChange={(e) => set({ yanked: (e.target as HTMLSelectElement).value })}
          >
            <option value="">either</option>
            <option value="false">not yanked</option>
            <option value="true">yanked</option>
          </select>
        </label>
        <button type="submit">Filter</button>
      </form>
      {list.error ? <ErrorBox error={list.error} retry={list.reload} /> : null}
      {!list.data ? (
        <Loading />
      ) : list.data.releases.length === 0 ? (
        <Empty>No release matches.</Empty>
      ) : (
        <>
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Arch</th>
                <th scope="col">Size</th>
                <th scope="col">Tiers</th>
                <th scope="col">Signer</th>
                <th scope="col">Uploaded</th>
              </tr>
            </thead>
            <tbody>
              {list.data.releases.map((r) => (
                <tr key={r.id}>
                  <td>
                    <Link href={`/releases/${r.id}`}>{r.name}</Link>{' '}
                    {r.yanked ? <span class="badge badge-halted">yanked</span> : null}
                  </td>
                  <td>{r.arch}</td>
                  <td>{bytes(r.size)}</td>
                  <td>{r.tiers.join(', ') || <span class="muted">none</span>}</td>
                  <td>
                    <code>{r.signerKeyId}</code>
                  </td>
                  <td>
                    <Time iso={r.uploadedAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager
            offset={offset}
            limit={LIMIT}
            total={list.data.total}
            onChange={(o) => set({ offset: String(o) })}
          />
        </>
      )}
    </>
  );
}
