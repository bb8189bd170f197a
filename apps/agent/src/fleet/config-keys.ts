import { AgentConfig, configError, configFile } from './config.ts';
import { FleetError } from './errors.ts';

/** How one `clpctl config set KEY VALUE` turns its text into a typed value. */
interface KeySpec {
  help: string;
  get(config: AgentConfig): unknown;
  set(config: AgentConfig, value: string): AgentConfig;
}

function list(value: string): string[] {
  return value
    .split(/[\s,]+/)
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function integer(key: string, value: string): number {
  if (!/^-?\d+$/.test(value.trim())) {
    throw new FleetError('CLP_E_CONFIG_KEY', `${key} takes a whole number, not "${value}"`, {
      details: { key, value },
    });
  }
  return Number(value);
}

function boolean(key: string, value: string): boolean {
  const text = value.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(text)) return true;
  if (['false', 'no', 'off', '0'].includes(text)) return false;
  throw new FleetError('CLP_E_CONFIG_KEY', `${key} takes true or false, not "${value}"`, {
    details: { key, value },
  });
}

/** `none` / `off` / empty clear a setting that may be null. */
function isNone(value: string): boolean {
  return ['none', 'off', 'null', ''].includes(value.trim());
}

function httpKey(name: keyof AgentConfig['http'], help: string): KeySpec {
  return {
    help,
    get: (c) => c.http[name],
    set: (c, v) => ({ ...c, http: { ...c.http, [name]: integer(`http.${name}`, v) } }),
  };
}

const KEYS: Record<string, KeySpec> = {
  servers: {
    help: 'server base URLs, tried in order (comma-separated)',
    get: (c) => c.servers,
    set: (c, v) => ({ ...c, servers: list(v) }),
  },
  tier: {
    help: 'tier assigned at enrollment (informational)',
    get: (c) => c.tier,
    set: (c, v) => ({ ...c, tier: v }),
  },
  tags: {
    help: 'machine tags (comma-separated)',
    get: (c) => c.tags,
    set: (c, v) => ({ ...c, tags: list(v) }),
  },
  mode: {
    help: 'normal | check-only | off',
    get: (c) => c.mode,
    set: (c, v) => ({ ...c, mode: v as AgentConfig['mode'] }),
  },
  minAgeDays: {
    help: 'apply only releases uploaded at least N days ago (none: no delay)',
    get: (c) => c.minAgeDays,
    set: (c, v) => ({ ...c, minAgeDays: isNone(v) ? null : integer('minAgeDays', v) }),
  },
  releasedBefore: {
    help: 'apply only releases uploaded before this ISO date (none: no cut-off)',
    get: (c) => c.releasedBefore,
    set: (c, v) => ({ ...c, releasedBefore: isNone(v) ? null : v.trim() }),
  },
  'schedule.cron': {
    help: 'when clpctl daemon checks: cron fields, local time (default "0 12 * * *"); restart the daemon after a change',
    get: (c) => c.schedule.cron,
    set: (c, v) => ({ ...c, schedule: { ...c.schedule, cron: v.trim() } }),
  },
  'schedule.randomDelayMinutes': {
    help: 'clpctl daemon starts each check at a random moment within this many minutes (the timer: RandomizedDelaySec)',
    get: (c) => c.schedule.randomDelayMinutes,
    set: (c, v) => ({
      ...c,
      schedule: { ...c.schedule, randomDelayMinutes: integer('schedule.randomDelayMinutes', v) },
    }),
  },
  spoolDir: {
    help: 'folder of reports not yet sent',
    get: (c) => c.spoolDir,
    set: (c, v) => ({ ...c, spoolDir: v }),
  },
  'http.timeoutMs': httpKey('timeoutMs', 'per-request time limit in ms'),
  'http.retries': httpKey('retries', 'retries per server on network errors, 5xx and 429'),
  'http.backoffMs': httpKey('backoffMs', 'first retry delay in ms (doubles, with jitter)'),
  'http.backoffMaxMs': httpKey('backoffMaxMs', 'longest retry delay in ms'),
  'http.maxRetryAfterMs': httpKey('maxRetryAfterMs', 'longest Retry-After the agent waits for, in ms'),
  caFile: {
    help: "PEM file of the CA (or self-signed certificate) the servers' https:// certificates must chain to, instead of the system store (none: the system store)",
    get: (c) => c.caFile,
    set: (c, v) => ({ ...c, caFile: isNone(v) ? null : v.trim() }),
  },
  allowInsecureHttp: {
    help: 'true lets the agent use plain http:// to servers that are not on this machine (default false)',
    get: (c) => c.allowInsecureHttp,
    set: (c, v) => ({ ...c, allowInsecureHttp: boolean('allowInsecureHttp', v) }),
  },
  machineId: { help: 'machine id (set by enroll)', get: (c) => c.machineId, set: readOnly('machineId') },
  credential: {
    help: 'machine credential (set by enroll)',
    get: (c) => c.credential,
    set: readOnly('credential'),
  },
};

function readOnly(key: string): KeySpec['set'] {
  return () => {
    throw new FleetError(
      'CLP_E_CONFIG_KEY',
      `${key} is set by 'clpctl enroll' and cannot be changed by hand`,
      {
        details: { key },
      },
    );
  };
}

export const CONFIG_KEYS: readonly string[] = Object.keys(KEYS);

function spec(key: string): KeySpec {
  const found = KEYS[key];
  if (!found) {
    throw new FleetError(
      'CLP_E_CONFIG_KEY',
      `unknown configuration key "${key}"; known keys: ${CONFIG_KEYS.join(', ')}`,
      {
        details: { key },
      },
    );
  }
  return found;
}

export function configKeyHelp(): string {
  return CONFIG_KEYS.map((key) => `  ${key.padEnd(28)} ${KEYS[key]!.help}`).join('\n');
}

/** The whole configuration as shown to people: the credential is masked. */
export function redactConfig(config: AgentConfig): Record<string, unknown> {
  return { ...config, credential: config.credential === undefined ? undefined : '********' };
}

export function getConfigValue(config: AgentConfig, key: string): unknown {
  return spec(key).get(config);
}

/** Returns a new, validated configuration with KEY set from its text form. */
export function setConfigValue(root: string, config: AgentConfig, key: string, value: string): AgentConfig {
  const next = spec(key).set(config, value);
  const parsed = AgentConfig.safeParse(next);
  if (!parsed.success) throw configError(configFile(root), parsed.error);
  return parsed.data;
}
