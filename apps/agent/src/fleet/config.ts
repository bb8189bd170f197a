import { join } from 'node:path';
import { z } from 'zod';
import { FleetError } from './errors.ts';
import { readStateFile, writeStateFile } from './own-state.ts';

/** Where the agent's configuration lives, relative to the system root. */
export const CONFIG_PATH = '/etc/clp/agent.json';
export const DEFAULT_SPOOL_DIR = '/var/lib/clp/spool';
export const DOWNLOAD_DIR = '/var/lib/clp/downloads';
const CONFIG_WHAT = "clp's agent configuration";

const isoDate = z
  .string()
  .refine((value) => /^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(Date.parse(value)), {
    message: 'expected an ISO date such as 2026-01-31 or 2026-01-31T00:00:00Z',
  });

export const RunMode = z.enum(['normal', 'check-only', 'off']);
export type RunMode = z.infer<typeof RunMode>;

/** Cron fields as node-schedule reads them: minute hour day-of-month month day-of-week, optionally seconds first. */
const cronString = z
  .string()
  .trim()
  .refine((value) => [5, 6].includes(value.split(/\s+/).length) && /^[\d*/,\-\sA-Za-z]+$/.test(value), {
    message: 'expected five cron fields such as "0 12 * * *" (minute hour day month weekday)',
  });

export const ScheduleConfig = z.strictObject({
  /** When the daemon checks, in local time; the default is daily at 12:00. */
  cron: cronString.default('0 12 * * *'),
  /** The check starts at a random moment within this many minutes after the cron time. */
  randomDelayMinutes: z.number().int().min(0).max(1440).default(60),
});
export type ScheduleConfig = z.infer<typeof ScheduleConfig>;

/** Network behaviour; short values make tests fast. */
export const HttpConfig = z.strictObject({
  /** Per-request time limit for API calls; for downloads, the connect/first-byte/idle limit. */
  timeoutMs: z.number().int().min(1).max(600_000).default(30_000),
  /** Retries per server on network errors, 5xx and 429, before falling back to the next server. */
  retries: z.number().int().min(0).max(20).default(4),
  /** First back-off delay; doubles on each retry, with jitter. */
  backoffMs: z.number().int().min(0).max(600_000).default(1_000),
  backoffMaxMs: z.number().int().min(0).max(3_600_000).default(60_000),
  /** A Retry-After longer than this makes the agent try the next server instead of waiting. */
  maxRetryAfterMs: z.number().int().min(0).max(3_600_000).default(300_000),
});
export type HttpConfig = z.infer<typeof HttpConfig>;

export const AgentConfig = z.strictObject({
  /** Server base URLs, tried in order. */
  servers: z.array(z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })).default([]),
  machineId: z
    .string()
    .regex(/^[A-Za-z0-9-]{8,64}$/)
    .optional(),
  credential: z.string().min(1).optional(),
  tier: z.string().min(1).max(64).optional(),
  tags: z.array(z.string().min(1).max(64)).max(32).default([]),
  /** Apply only releases uploaded at least this many days ago (null: no delay). */
  minAgeDays: z.number().int().min(0).max(3650).nullable().default(null),
  /** Apply only releases uploaded before this date (null: no cut-off). */
  releasedBefore: isoDate.nullable().default(null),
  mode: RunMode.default('normal'),
  schedule: ScheduleConfig.prefault({}),
  /** Absolute path on the target system (taken under --root). */
  spoolDir: z.string().startsWith('/', 'expected an absolute path').default(DEFAULT_SPOOL_DIR),
  http: HttpConfig.prefault({}),
  /** PEM certificates an https:// server must chain to, instead of the system's store (absolute path, taken under --root). */
  caFile: z.string().startsWith('/', 'expected an absolute path').nullable().default(null),
  /** Allow plain http:// to servers that are not on this machine (the patches stay signed; the credential does not). */
  allowInsecureHttp: z.boolean().default(false),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

/** A path on the target system, taken under the root. */
export function underRoot(root: string, path: string): string {
  return join(root, path);
}

export function configFile(root: string): string {
  return underRoot(root, CONFIG_PATH);
}

/** The configuration of a machine that has never been set up. */
export function defaultConfig(): AgentConfig {
  return AgentConfig.parse({});
}

/** Turns a zod failure into a coded error naming the first bad field. */
export function configError(file: string, error: z.ZodError): FleetError {
  const issue = error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : '(top level)';
  const message = issue?.message ?? 'invalid';
  return new FleetError(
    'CLP_E_CONFIG_INVALID',
    `${file}: field "${field}": ${message}; fix the file or set the value with 'clpctl config set ${field} VALUE'`,
    {
      details: {
        file,
        field,
        issues: error.issues.map((i) => ({ field: i.path.join('.'), message: i.message })),
      },
    },
  );
}

/**
 * Reads ROOT/etc/clp/agent.json. A missing file gives the defaults (not enrolled); a file that is
 * not JSON or breaks the schema is an error naming the field.
 */
export async function loadConfig(root: string): Promise<AgentConfig> {
  const file = configFile(root);
  let text: string;
  try {
    text = await readStateFile(root, file, CONFIG_WHAT);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return defaultConfig();
    throw error;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FleetError(
      'CLP_E_CONFIG_INVALID',
      `${file} is not valid JSON (${(error as Error).message}); fix or remove it`,
      {
        cause: error,
        details: { file },
      },
    );
  }
  const parsed = AgentConfig.safeParse(raw);
  if (!parsed.success) throw configError(file, parsed.error);
  return parsed.data;
}

/** Validates and writes the configuration atomically with mode 0600 (it holds the credential). */
export async function saveConfig(root: string, config: AgentConfig): Promise<void> {
  const file = configFile(root);
  const parsed = AgentConfig.safeParse(config);
  if (!parsed.success) throw configError(file, parsed.error);
  await writeStateFile(root, file, `${JSON.stringify(parsed.data, null, 2)}\n`, CONFIG_WHAT, 0o600);
}

/** The configuration of an enrolled machine: servers and a credential. */
export interface EnrolledConfig extends AgentConfig {
  credential: string;
  machineId: string;
}

export function requireEnrolled(root: string, config: AgentConfig): EnrolledConfig {
  if (config.credential === undefined || config.machineId === undefined || config.servers.length === 0) {
    throw new FleetError(
      'CLP_E_NOT_ENROLLED',
      `this machine is not enrolled (${configFile(root)} has no server or credential); run 'clpctl enroll URL TOKEN' first`,
    );
  }
  return config as EnrolledConfig;
}
