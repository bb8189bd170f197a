import { AGENT_PATHS, EnrollResponse, type InstalledPatch } from '@clp/protocol';
import { type AgentConfig, configFile, loadConfig, saveConfig } from './config.ts';
import type { PatchEngine } from './engine-port.ts';
import { FleetError } from './errors.ts';
import { AgentHttpClient } from './http-client.ts';
import { readMachineFacts, readMachineId } from './machine-facts.ts';
import { ReleaseLedger } from './release-ledger.ts';
import { transportFor } from './server-transport.ts';

export interface EnrollOptions {
  root: string;
  url: string;
  token: string;
  /** `key=value` (or bare) tags asked for on top of the token's. */
  tags?: readonly string[];
  /** Enroll again although the machine already has a credential. */
  force?: boolean;
  /** Lists installed patches for the server; optional, so enrolling works before the engine is set up. */
  engine?: PatchEngine;
  log?: (line: string) => void;
}

export interface EnrollResult {
  machineId: string;
  tier: string;
  tags: string[];
  servers: string[];
  configFile: string;
}

const TAG = /^[A-Za-z0-9_.:/-]+(=[^\s,]*)?$/;

/** Checks `--tag k=v` values before anything is sent. */
export function checkTags(tags: readonly string[]): string[] {
  for (const tag of tags) {
    if (tag.length > 64 || !TAG.test(tag)) {
      throw new FleetError(
        'CLP_E_CONFIG_INVALID',
        `tag "${tag}" is not of the form key=value (letters, digits, _.:/- in the key; no spaces or commas)`,
        {
          details: { tag },
        },
      );
    }
  }
  return [...new Set(tags)];
}

function checkUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new FleetError(
      'CLP_E_CONFIG_INVALID',
      `"${url}" is not a URL; give the server's base URL, e.g. https://clp.example.org`,
      {
        details: { url },
      },
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new FleetError('CLP_E_CONFIG_INVALID', `"${url}" must be an http:// or https:// URL`, {
      details: { url },
    });
  }
  return url.replace(/\/+$/, '');
}

/**
 * Enrolls this machine: sends its facts and the one-time token, and writes the credential the
 * server returns into ROOT/etc/clp/agent.json (0600). The URL becomes the first server; servers
 * configured before stay as fallbacks.
 */
export async function enrollMachine(options: EnrollOptions): Promise<EnrollResult> {
  const { root } = options;
  const url = checkUrl(options.url);
  const tags = checkTags(options.tags ?? []);
  const config = await loadConfig(root);
  if (config.credential !== undefined && !options.force) {
    throw new FleetError(
      'CLP_E_ALREADY_ENROLLED',
      `this machine is already enrolled as ${config.machineId ?? '?'} (${configFile(root)}); pass --force to enroll again with a new credential`,
      { details: { machineId: config.machineId } },
    );
  }
  const machineId = config.machineId ?? (await readMachineId(root)).machineId;
  const facts = await readMachineFacts(root);
  const installed = options.engine ? await installedPatches(root, options.engine) : [];
  const client = new AgentHttpClient({
    servers: [url],
    http: config.http,
    log: options.log,
    transport: transportFor(root, config),
  });
  const { value } = await client
    .postJson(
      AGENT_PATHS.enroll,
      {
        token: options.token,
        facts,
        machineId,
        tags,
        installed,
        // Enrolling again under the same id: the current credential proves this is that machine.
        ...(config.credential !== undefined && machineId === config.machineId
          ? { credential: config.credential }
          : {}),
      },
      EnrollResponse,
    )
    .catch((error: unknown) => {
      // Enrolling is run by a person, once: nothing checks again later, so say how to retry.
      if (error instanceof FleetError && error.code === 'CLP_E_SERVER_UNREACHABLE') {
        throw new FleetError(
          'CLP_E_SERVER_UNREACHABLE',
          `the server at ${url} is unreachable (${unreachableReason(error.message, url)}); nothing was enrolled and the token was not used: check the URL and that the server runs, then run 'clpctl enroll ${url} TOKEN' again`,
          { cause: error, details: { url } },
        );
      }
      throw error;
    });
  const next: AgentConfig = {
    ...config,
    servers: [url, ...config.servers.filter((s) => s.replace(/\/+$/, '') !== url)],
    machineId: value.machineId,
    credential: value.credential,
    tier: value.tier,
    tags: value.tags,
  };
  await saveConfig(root, next);
  return {
    machineId: value.machineId,
    tier: value.tier,
    tags: value.tags,
    servers: next.servers,
    configFile: configFile(root),
  };
}

/** The transport's reason for one server, without the retry advice meant for the daily check. */
function unreachableReason(message: string, url: string): string {
  const reason = message
    .replace(/^no server answered \S+: /, '')
    .replace(/; the next check will try again$/, '');
  return reason.startsWith(`${url}: `) ? reason.slice(url.length + 2) : reason;
}

/** Installed patches the ledger can name by release hash (the only ones the server can match). */
async function installedPatches(root: string, engine: PatchEngine): Promise<InstalledPatch[]> {
  const ledger = await ReleaseLedger.load(root);
  const patches = await engine.listPatches(root);
  const out: InstalledPatch[] = [];
  for (const patch of patches) {
    const entry = ledger.byName(patch.name);
    if (entry) out.push({ name: patch.name, sha256: entry.sha256, series: entry.series, state: patch.state });
  }
  return out;
}
