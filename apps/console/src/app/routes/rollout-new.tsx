import type { RolloutPreview } from '@clp/protocol';
import { useEffect, useState } from 'preact/hooks';
import { useLocation, useSearchParams } from 'wouter-preact';
import { describeFailure, useNotify } from '../../components/feedback.tsx';
import { listReleases, listTiers } from '../../features/releases/api.ts';
import { createRollout, type NewRollout, previewRollout } from '../../features/rollouts/api.ts';
import { can } from '../../lib/authorization.ts';
import { useSession } from '../../lib/session.ts';
import { useQuery } from '../../lib/use-query.ts';

const list = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function NewRolloutPage() {
  const { session } = useSession();
  const notify = useNotify();
  const [, navigate] = useLocation();
  const [params] = useSearchParams();
  const releases = useQuery('releases-open', () => listReleases({ query: { yanked: 'false', limit: 200 } }));
  const tiers = useQuery('tiers', () => listTiers());
  const [releaseId, setReleaseId] = useState(params.get('release') ?? '');
  const [tier, setTier] = useState('');
  const [stages, setStages] = useState('1,10,50,100');
  const [minutes, setMinutes] = useState('60');
  const [rate, setRate] = useState('5');
  const [minReports, setMinReports] = useState('10');
  const [tags, setTags] = useState('');
  const [arch, setArch] = useState('');
  const [os, setOs] = useState('');
  const [preview, setPreview] = useState<RolloutPreview | undefined>(undefined);
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!tier && tiers.data?.tiers[0]) setTier(tiers.data.tiers[0].name);
  }, [tiers.data, tier]);

  function body(id?: string): NewRollout | string {
    if (!/^[0-9a-f]{64}$/.test(releaseId)) return 'Choose a release.';
    if (!tier) return 'Choose a tier.';
    const percents = list(stages).map(Number);
    if (percents.length === 0 || percents.some((p) => !(p > 0 && p <= 100)))
      return 'Stages: percentages between 0 and 100, separated by commas (e.g. 1,10,50,100).';
    if (percents.some((p, i) => i > 0 && p < percents[i - 1]!))
      return 'Stages: percentages must not decrease.';
    const m = Number(minutes);
    if (!Number.isInteger(m) || m < 0) return 'Minimum stage time: a whole number of minutes (0 or more).';
    const r = Number(rate);
    if (!(r > 0 && r <= 100)) return 'Failure threshold: a percentage above 0, at most 100.';
    const n = Number(minReports);
    if (!Number.isInteger(n) || n < 1) return 'Minimum reports: a whole number, at least 1.';
    const selector: NewRollout['selector'] = {};
    if (list(tags).length) selector.tags = list(tags);
    if (arch) selector.arch = [arch as 'x86_64' | 'aarch64'];
    if (list(os).length) selector.os = list(os);
    return {
      releaseId,
      tier,
      stages: percents.map((percent) => ({ percent, minDurationSeconds: m * 60 })),
      failureThreshold: { maxFailureRate: r / 100, minReports: n },
      selector,
      ...(id ? { id } : {}),
    };
  }

  // The preview follows the form (debounced); its id is what the rollout is then created with.
  const draft = body();
  const draftKey = JSON.stringify(draft);
  useEffect(() => {
    if (typeof draft === 'string' || !can(session.role, 'createRollout')) {
      setPreview(undefined);
      return;
    }
    const timer = setTimeout(() => {
      previewRollout({ body: draft }).then(
        (p) => {
          setPreview(p);
          setProblem(undefined);
        },
        (e) => setProblem(describeFailure(e)),
      );
    }, 300);
    return () => clearTimeout(timer);
    // biome-ignore lint/correctness/useExhaustiveDependencies: draftKey stands for draft
  }, [draftKey]);

  if (!can(session.role, 'createRollout'))
    return <p class="error-text">Your role ({session.role}) may not start rollouts; ask an operator.</p>;

  async function submit(e: Event) {
    e.preventDefault();
    const b = body(preview?.rolloutId);
    if (typeof b === 'string') {
      setProblem(b);
      return;
    }
    setBusy(true);
    try {
      const created = await createRollout({ body: b });
      notify('ok', `Rollout of ${created.releaseName} to ${created.tier} started`);
      navigate(`/rollouts/${created.id}`);
    } catch (failure) {
      setProblem(describeFailure(failure));
    } finally {
      setBusy(false);
    }
  }

  const input = (set: (v: string) => void) => (e: Event) => set((e.target as HTMLInputElement).value);
  return (
    <>
      <h1>New rollout</h1>
      <form class="card form-grid" onSubmit={submit}>
        <label class="field">
          Release
          <select name="release" value={releaseId} onChange={input(setReleaseId)} required>
            <option value="">choose…</option>
            {releases.data?.releases.map((r) => (
              <option key={r.id} value={r.id}>
                {r.name} ({r.arch})
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          Tier
          <select name="tier" value={tier} onChange={input(setTier)}>
            {tiers.data?.tiers.map((t) => (
              <option key={t.name} value={t.name}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          Stages (% of the matching machines)
          <input name="stages" value={stages} onInput={input(setStages)} />
        </label>
        <label class="field">
          Minimum time per stage (minutes)
          <input name="minutes" type="number" min={0} value={minutes} onInput={input(setMinutes)} />
        </label>
        <label class="field">
          Halt at failure rate (%)
          <input
            name="rate"
            type="number"
            min={0.01}
            max={100}
            step="any"
            value={rate}
            onInput={input(setRate)}
          />
        </label>
        <label class="field">
          …after at least this many reports
          <input name="minReports" type="number" min={1} value={minReports} onInput={input(setMinReports)} />
        </label>
        <label class="field">
          Only machines with tags (comma-separated)
          <input name="tags" value={tags} placeholder="site=paris" onInput={input(setTags)} />
        </label>
        <label class="field">
          Architecture
          <select name="arch" value={arch} onChange={input(setArch)}>
            <option value="">any</option>
            <option value="x86_64">x86_64</option>
            <option value="aarch64">aarch64</option>
          </select>
        </label>
        <label class="field">
          OS ids (comma-separated)
          <input name="os" value={os} placeholder="vincent, debian" onInput={input(setOs)} />
        </label>
        <section class="preview" aria-live="polite" aria-label="Preview">
          <h2>Machines reached now</h2>
          {preview ? (
            <>
              <p data-testid="preview-matching">
                {preview.matching.toLocaleString('en')} of {preview.inTier.toLocaleString('en')} machines in{' '}
                {tier} match.
              </p>
              <ol class="stages-preview">
                {preview.stages.map((s, i) => (
                  <li key={i} data-testid="preview-stage">
                    Stage {i + 1} ({s.percent} %): <strong>{s.machines.toLocaleString('en')}</strong> machines
                  </li>
                ))}
              </ol>
            </>
          ) : (
            <p class="muted">{typeof draft === 'string' ? draft : 'Counting…'}</p>
          )}
        </section>
        {problem ? (
          <p class="error-text" role="alert">
            {problem}
          </p>
        ) : null}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy || typeof draft === 'string'}>
            {busy ? 'Starting…' : 'Start rollout'}
          </button>
        </div>
      </form>
    </>
  );
}
