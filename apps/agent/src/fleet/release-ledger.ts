import { join } from 'node:path';
import { underRoot } from './config.ts';
import { readStateFile, writeStateFile } from './own-state.ts';

/** Folder of the fleet loop's own state, beside the engine's. */
export const FLEET_STATE_DIR = '/var/lib/clp/fleet';
const LEDGER_WHAT = "clp's release ledger";

/** What the agent remembers of a release it got from a server. */
export interface LedgerEntry {
  name: string;
  series: string;
  /** sha256 of the .clp file: what the server knows the release by. */
  sha256: string;
  releaseId: string;
  rolloutId: string | null;
  /** `failed`: an apply of this exact file failed here; it is not tried again unless asked. */
  state: 'applied' | 'failed';
  at: string;
  errorCode?: string;
}

interface LedgerFile {
  version: 1;
  releases: LedgerEntry[];
}

/**
 * ROOT/var/lib/clp/fleet/releases.json: which server release (by sha256) each installed patch
 * came from. The engine knows patches by name; the server knows releases by file hash, and the
 * poll must name both.
 */
export class ReleaseLedger {
  readonly root: string;
  readonly file: string;
  #entries: LedgerEntry[] = [];

  private constructor(root: string, file: string) {
    this.root = root;
    this.file = file;
  }

  static async load(root: string): Promise<ReleaseLedger> {
    const ledger = new ReleaseLedger(root, join(underRoot(root, FLEET_STATE_DIR), 'releases.json'));
    try {
      const parsed = JSON.parse(await readStateFile(root, ledger.file, LEDGER_WHAT)) as Partial<LedgerFile>;
      ledger.#entries = Array.isArray(parsed.releases) ? parsed.releases : [];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    return ledger;
  }

  entries(): readonly LedgerEntry[] {
    return this.#entries;
  }

  byName(name: string): LedgerEntry | undefined {
    return this.#entries.find((e) => e.name === name);
  }

  bySha(sha256: string): LedgerEntry | undefined {
    return this.#entries.find((e) => e.sha256 === sha256);
  }

  async put(entry: LedgerEntry): Promise<void> {
    this.#entries = [...this.#entries.filter((e) => e.name !== entry.name), entry];
    await this.#save();
  }

  async remove(name: string): Promise<void> {
    this.#entries = this.#entries.filter((e) => e.name !== name);
    await this.#save();
  }

  /** Forgets every failed mark, so that the next poll offers those releases again. */
  async clearFailed(): Promise<number> {
    const before = this.#entries.length;
    this.#entries = this.#entries.filter((e) => e.state !== 'failed');
    await this.#save();
    return before - this.#entries.length;
  }

  async #save(): Promise<void> {
    const data: LedgerFile = { version: 1, releases: this.#entries };
    await writeStateFile(this.root, this.file, `${JSON.stringify(data, null, 1)}\n`, LEDGER_WHAT, 0o600);
  }
}
