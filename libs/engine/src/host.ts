import { readFile } from 'node:fs/promises';
import { arch } from 'node:os';
import { join } from 'node:path';

/** The machine facts the applicability rules look at. */
export interface HostFacts {
  /** x86_64 or aarch64 (the names patches use), or the raw Node name for anything else. */
  architecture: string;
  /** os-release ID followed by its ID_LIKE words; empty when the root has no os-release. */
  osIds: string[];
  /** os-release VERSION_ID, when there is one. */
  osVersion: string | null;
}

const ARCH_NAMES: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

export function hostArchitecture(): string {
  return ARCH_NAMES[arch()] ?? arch();
}

/** Reads ROOT/etc/os-release (or ROOT/usr/lib/os-release). */
export async function readHostFacts(root: string, architecture?: string): Promise<HostFacts> {
  const facts: HostFacts = { architecture: architecture ?? hostArchitecture(), osIds: [], osVersion: null };
  for (const file of ['etc/os-release', 'usr/lib/os-release']) {
    const text = await readFile(join(root, file), 'utf8').catch(() => null);
    if (text === null) continue;
    const fields = new Map<string, string>();
    for (const line of text.split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m?.[1] && m[2] !== undefined) fields.set(m[1], m[2].replace(/^["']|["']$/g, ''));
    }
    const id = fields.get('ID');
    facts.osIds = [...(id ? [id] : []), ...(fields.get('ID_LIKE')?.split(/\s+/).filter(Boolean) ?? [])];
    facts.osVersion = fields.get('VERSION_ID') ?? null;
    break;
  }
  return facts;
}

/** Compares dotted versions numerically where both parts are numbers ("12" < "12.4" < "13"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.\-_]/);
  const pb = b.split(/[.\-_]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = Number(x);
    const ny = Number(y);
    const c = Number.isFinite(nx) && Number.isFinite(ny) ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c < 0 ? -1 : 1;
  }
  return 0;
}
