import type { ReleaseToApply } from '@clp/protocol';
import type { AgentConfig } from './config.ts';

const DAY_MS = 86_400_000;

/**
 * Why the configured delay or cut-off holds a release back now, or null when it may be applied.
 * The release's upload time (from the server) is what both rules compare.
 */
export function cutoffReason(
  release: Pick<ReleaseToApply, 'name' | 'releasedAt'>,
  config: Pick<AgentConfig, 'minAgeDays' | 'releasedBefore'>,
  now: Date,
): string | null {
  const released = Date.parse(release.releasedAt);
  if (Number.isNaN(released))
    return `${release.name}: the server gave no valid release time (${release.releasedAt})`;
  if (config.minAgeDays !== null) {
    const ageMs = now.getTime() - released;
    if (ageMs < config.minAgeDays * DAY_MS) {
      const due = new Date(released + config.minAgeDays * DAY_MS).toISOString();
      return `${release.name} was released ${release.releasedAt}; minAgeDays=${config.minAgeDays} holds it back until ${due}`;
    }
  }
  if (config.releasedBefore !== null && released >= Date.parse(config.releasedBefore)) {
    return `${release.name} was released ${release.releasedAt}, not before the cut-off releasedBefore=${config.releasedBefore}`;
  }
  return null;
}
