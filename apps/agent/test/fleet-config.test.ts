import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { exitCodeFor } from '../src/exit-codes.ts';
import { configFile, loadConfig, saveConfig } from '../src/fleet/config.ts';
import { getConfigValue, redactConfig, setConfigValue } from '../src/fleet/config-keys.ts';
import { cutoffReason } from '../src/fleet/cutoff.ts';
import type { FleetError } from '../src/fleet/errors.ts';
import { removeAll, tempDir } from './fleet-harness.ts';

const roots: string[] = [];
afterEach(async () => {
  await removeAll(...roots.splice(0));
});

async function root(): Promise<string> {
  const dir = await tempDir('clp-fleet-config-');
  roots.push(dir);
  return dir;
}

async function set(r: string, key: string, value: string): Promise<void> {
  await saveConfig(r, setConfigValue(r, await loadConfig(r), key, value));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as FleetError).code;
  }
  return undefined;
}

describe('agent configuration', () => {
  it('a machine that was never set up gets the documented defaults', async () => {
    const config = await loadConfig(await root());
    expect(config.servers).toEqual([]);
    expect(config.schedule).toEqual({ cron: '0 12 * * *', randomDelayMinutes: 60 });
    expect(config.spoolDir).toBe('/var/lib/clp/spool');
    expect(config.minAgeDays).toBeNull();
    expect(config.releasedBefore).toBeNull();
    expect(config.mode).toBe('normal');
  });

  it('config set writes agent.json with mode 0600, atomically, and config get reads it back', async () => {
    const r = await root();
    await set(r, 'servers', 'https://a.example.org, https://b.example.org');
    await set(r, 'minAgeDays', '7');
    await set(r, 'schedule.cron', '30 6 * * 1-5');
    await set(r, 'schedule.randomDelayMinutes', '15');
    await set(r, 'tags', 'site=lab,rack=4');
    const file = configFile(r);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    // No temporary file is left beside it.
    expect(await readdir(join(r, 'etc/clp'))).toEqual(['agent.json']);
    const config = await loadConfig(r);
    expect(getConfigValue(config, 'servers')).toEqual(['https://a.example.org', 'https://b.example.org']);
    expect(getConfigValue(config, 'minAgeDays')).toBe(7);
    expect(getConfigValue(config, 'schedule.cron')).toBe('30 6 * * 1-5');
    expect(getConfigValue(config, 'schedule.randomDelayMinutes')).toBe(15);
    expect(getConfigValue(config, 'tags')).toEqual(['site=lab', 'rack=4']);
    await set(r, 'minAgeDays', 'none');
    expect((await loadConfig(r)).minAgeDays).toBeNull();
    await set(r, 'releasedBefore', '2026-01-31');
    expect((await loadConfig(r)).releasedBefore).toBe('2026-01-31');
  });

  it('refuses unknown keys, bad values and hand edits of the credential with a coded error', async () => {
    const r = await root();
    const config = await loadConfig(r);
    expect(codeOf(() => setConfigValue(r, config, 'colour', 'blue'))).toBe('CLP_E_CONFIG_KEY');
    expect(codeOf(() => setConfigValue(r, config, 'minAgeDays', 'soon'))).toBe('CLP_E_CONFIG_KEY');
    expect(codeOf(() => setConfigValue(r, config, 'servers', 'ftp://x.example.org'))).toBe(
      'CLP_E_CONFIG_INVALID',
    );
    expect(codeOf(() => setConfigValue(r, config, 'schedule.cron', 'every day'))).toBe(
      'CLP_E_CONFIG_INVALID',
    );
    expect(codeOf(() => setConfigValue(r, config, 'releasedBefore', 'yesterday'))).toBe(
      'CLP_E_CONFIG_INVALID',
    );
    expect(codeOf(() => setConfigValue(r, config, 'mode', 'sometimes'))).toBe('CLP_E_CONFIG_INVALID');
    expect(codeOf(() => setConfigValue(r, config, 'credential', 'x'))).toBe('CLP_E_CONFIG_KEY');
    expect(exitCodeFor('CLP_E_CONFIG_KEY')).toBe(2);
  });

  it('a damaged agent.json is an error naming the file and the field, not a silent reset', async () => {
    const r = await root();
    await mkdir(join(r, 'etc/clp'), { recursive: true });
    await writeFile(configFile(r), '{"servers": ');
    await expect(loadConfig(r)).rejects.toMatchObject({ code: 'CLP_E_CONFIG_INVALID' });
    await writeFile(
      configFile(r),
      JSON.stringify({ servers: ['https://a.example.org'], schedule: { randomDelayMinutes: -1 } }),
    );
    const error = (await loadConfig(r).catch((e: unknown) => e)) as FleetError;
    expect(error.code).toBe('CLP_E_CONFIG_INVALID');
    expect(error.message).toContain('schedule.randomDelayMinutes');
    expect(error.message).toContain(configFile(r));
  });

  it('the credential is masked when the whole configuration is shown', async () => {
    const r = await root();
    await saveConfig(r, {
      ...(await loadConfig(r)),
      credential: 'clp_mch_secret',
      machineId: 'machine-0001',
    });
    expect(JSON.stringify(redactConfig(await loadConfig(r)))).not.toContain('clp_mch_secret');
    expect(await readFile(configFile(r), 'utf8')).toContain('clp_mch_secret');
  });

  it('minAgeDays and releasedBefore hold back releases that are too new', () => {
    const release = { name: 'CLP1260301', releasedAt: '2026-03-01T00:00:00Z' };
    const none = { minAgeDays: null, releasedBefore: null };
    expect(cutoffReason(release, none, new Date('2026-03-01T00:00:01Z'))).toBeNull();
    expect(cutoffReason(release, { ...none, minAgeDays: 7 }, new Date('2026-03-07T23:59:59Z'))).toContain(
      'minAgeDays=7',
    );
    expect(cutoffReason(release, { ...none, minAgeDays: 7 }, new Date('2026-03-08T00:00:00Z'))).toBeNull();
    expect(
      cutoffReason(release, { ...none, releasedBefore: '2026-03-01' }, new Date('2026-06-01')),
    ).toContain('releasedBefore');
    expect(
      cutoffReason(release, { ...none, releasedBefore: '2026-03-02' }, new Date('2026-06-01')),
    ).toBeNull();
  });
});
