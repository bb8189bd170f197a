/**
 * What the fleet loop needs of the apply engine. The update flow talks only to this interface, so
 * it reads the same whether the engine runs in this process (clpctl) or a test drives it.
 */
export interface PatchEngine {
  /** Patches the engine lists on this machine: installed, or marked failed by a health check. */
  listPatches(root: string): Promise<Array<{ name: string; state: 'installed' | 'failed' }>>;
  /** Verifies and applies FILE; throws a coded error when it is refused or rolled back. */
  install(file: string, options: EngineCallOptions): Promise<{ name: string }>;
  /** Takes an installed patch back. */
  uninstall(name: string, options: EngineCallOptions): Promise<void>;
  /** Opens and verifies FILE against the machine's trust store and says whether it would apply; writes nothing. */
  check(file: string, options: EngineCallOptions): Promise<{ name: string; problems: string[] }>;
}

export interface EngineCallOptions {
  root: string;
  log: (line: string) => void;
}
