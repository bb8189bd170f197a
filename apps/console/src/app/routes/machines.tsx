import { useState } from 'preact/hooks';
import { Link, useSearchParams } from 'wouter-preact';
import { ErrorBox } from '../../components/feedback.tsx';
import { Empty, Loading, Pager, Time } from '../../components/ui.tsx';
import { listMachines } from '../../features/machines/api.ts';
import { listReleases, listTiers } from '../../features/releases/api.ts';
import { useQuery } from '../../lib/use-query.ts';

const LIMIT = 50;
const FILTERS = ['q', 'tier', 'tag', 'os', 'arch', 'installed', 'failed', 'seen', 'revoked', 'sort'] as const;

/** Searched, filtered and paged by the server: the page holds 50 machines, whatever the fleet. */
export function MachinesPage() {
  const [params, setParams] = useSearchParams();
  const query = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? '']));
  const offset = Number(params.get('offset') ?? 0);
  const [text, setText] = useState(query.q ?? '');
  const [tag, setTag] = useState(query.tag ?? '');
  const [os, setOs] = useState(query.os ?? '');
  const key = JSON.stringify({ ...query, offset });
  const list = useQuery(key, () => listMachines({ query: { ...query, offset, limit: LIMIT } }), 30_000);
  const tiers = useQuery('tiers', () => listTiers());
  const releases = useQuery('releases-for-filter', () => listReleases({ query: { limit: 200 } }));
  const set = (changes: Record<string, string>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    if (!('offset' in changes)) next.delete('offset');
    setParams(next);
  };
  const select = (name: (typeof FILTERS)[number], label: string, options: Array<[string, string]>) => (
    <label class="field">
      {label}
      <select
        name={name}
        value={query[name]}
        onChange={(e) => set({ [name]: (e.target as HTMLSelectElement).value })}
      >
        {options.map(([v, l]) => (
          <option key={v} value={v}>
            {l}
          </option>
        ))}
      </select>
    </label>
  );
  const releaseOptions: Array<[string, string]> = [
    ['', 'any'],
    ...(releases.data?.releases.map((r) => [r.sha256, r.name] as [string, string]) ?? []),
  ];
  return (
    <>
      <h1>Machines</h1>
      <form
        class="filters"
        aria-label="Filters"
        onSubmit={(e) => {
          e.preventDefault();
          set({ q: text, tag, os });
        }}
      >
        <label class="field">
          Search
          <input
            name="q"
            value={text}
            placeholder="host name or id"
            onInput={(e) => setText((e.target as HTMLInputElement).value)}
          />
        </label>
        {select('tier', 'Tier', [
          ['', 'any'],
          ...(tiers.data?.tiers.map((t) => [t.name, t.name] as [string, string]) ?? []),
        ])}
        <label class="field">
          Tag
          <input
            name="tag"
            value={tag}
            placeholder="site=paris"
            onInput={(e) => setTag((e.target as HTMLInputElement).value)}
          />
        </label>
        <label class="field">
          OS
          <input
            name="os"
            value={os}
            placeholder="vincent"
            onInput={(e) => setOs((e.target as HTMLInputElement).value)}
          />
        </label>
        {select('arch', 'Arch', [
          ['', 'any'],
          ['x86_64', 'x86_64'],
          ['aarch64', 'aarch64'],
        ])}
        {select('installed', 'Installed', releaseOptions)}
        {select('failed', 'Failed', releaseOptions)}
        {select('seen', 'Last seen', [
          ['', 'any time'],
          ['day', 'in the last day'],
          ['week', 'in the last week'],
          ['stale', 'not for a week'],
          ['never', 'never'],
        ])}
        {select('revoked', 'Revoked', [
          ['', 'either'],
          ['false', 'not revoked'],
          ['true', 'revoked'],
        ])}
        {select('sort', 'Sort', [
          ['', 'host name'],
          ['lastSeen', 'last seen'],
          ['enrolled', 'newest'],
        ])}
        <button type="submit">Search</button>
      </form>
      {list.error ? <ErrorBox error={list.error} retry={list.reload} /> : null}
      {!list.data ? (
        <Loading />
      ) : list.data.machines.length === 0 ? (
        <Empty>No machine matches these filters.</Empty>
      ) : (
        <>
          <table class="table" data-testid="machines">
            <thead>
              <tr>
                <th scope="col">Host name</th>
                <th scope="col">Tier</th>
                <th scope="col">OS</th>
                <th scope="col">Arch</th>
                <th scope="col">Tags</th>
                <th scope="col">Installed</th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {list.data.machines.map((m) => (
                <tr key={m.id}>
                  <td>
                    <Link href={`/machines/${m.id}`}>{m.hostname}</Link>
                    {m.revoked ? <span class="badge badge-halted">revoked</span> : null}
                  </td>
                  <td>{m.tier}</td>
                  <td>
                    {m.os.id} {m.os.version}
                  </td>
                  <td>{m.arch}</td>
                  <td>{m.tags.join(', ')}</td>
                  <td>
                    {m.installed
                      .map((p) => `${String(p.name)}${p.state === 'failed' ? ' (failed)' : ''}`)
                      .join(', ') || <span class="muted">none</span>}
                  </td>
                  <td>
                    <Time iso={m.lastSeenAt} />
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
