import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import { arch as osArch, hostname as osHostname } from 'node:os';
import { posix, relative, resolve } from 'node:path';
import { resolveUnderRoot } from '@clp/engine';
import type { MachineFacts } from '@clp/protocol';
import { AGENT_VERSION } from '../version.ts';
import { FleetError } from './errors.ts';

const MAX_LINKS = 8;

/**
 * Reads the file `path` of the root as a chroot would: links (os-release is usually one) are
 * followed inside the root only, an absolute one starting again at the root. A link to a file
 * of this host outside the root (/etc/hostname -> /etc/shadow) would otherwise be sent to the
 * server as a fact. Null when it is missing or not a regular file.
 */
async function readOptional(root: string, path: string): Promise<string | null> {
  const base = resolve(root);
  let inRoot = path;
  for (let hop = 0; hop <= MAX_LINKS; hop++) {
    const real = await resolveUnderRoot(base, inRoot).catch(() => null);
    if (real === null) return null;
    const st = await lstat(real).catch(() => null);
    if (st === null) return null;
    if (st.isSymbolicLink()) {
      const to = await readlink(real);
      inRoot = posix.resolve(posix.dirname(`/${relative(base, real)}`), to);
      continue;
    }
    if (!st.isFile()) return null;
    const fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      return (await fh.stat()).isFile() ? await fh.readFile('utf8') : null;
    } finally {
      await fh.close();
    }
  }
  return null;
}

/** Parses os-release(5): KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!match) continue;
    let value = match[2]!.trim();
    if ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'"))) {
      value = value.slice(1, -1).replace(/\\(["'$`\\])/g, '$1');
    }
    out[match[1]!] = value;
  }
  return out;
}

/** Node's architecture names mapped to the ones patches use. */
export function mapArch(nodeArch: string): MachineFacts['arch'] {
  if (nodeArch === 'x64') return 'x86_64';
  if (nodeArch === 'arm64') return 'aarch64';
  throw new FleetError(
    'CLP_E_UNSUPPORTED_ARCH',
    `architecture ${nodeArch} is not supported (x86_64 and aarch64 are)`,
    {
      details: { arch: nodeArch },
    },
  );
}

/** Facts sent on enroll and poll: os-release and hostname are read under the root. */
export async function readMachineFacts(root: string): Promise<MachineFacts> {
  const osRelease =
    (await readOptional(root, '/etc/os-release')) ?? (await readOptional(root, '/usr/lib/os-release')) ?? '';
  const fields = parseOsRelease(osRelease);
  const hostFile = (await readOptional(root, '/etc/hostname'))?.trim();
  return {
    hostname: (hostFile || osHostname()).slice(0, 253),
    os: { id: (fields.ID || 'linux').slice(0, 64), version: (fields.VERSION_ID ?? '').slice(0, 64) },
    arch: mapArch(osArch()),
    agentVersion: AGENT_VERSION,
  };
}

/** ROOT/etc/machine-id when it is there and well-formed, else a newly generated id. */
export async function readMachineId(root: string): Promise<{ machineId: string; generated: boolean }> {
  const text = (await readOptional(root, '/etc/machine-id'))?.trim();
  if (text && /^[A-Za-z0-9-]{8,64}$/.test(text)) return { machineId: text, generated: false };
  return { machineId: randomUUID(), generated: true };
}
