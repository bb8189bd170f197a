/** A system package manager, behind the smallest interface the engine needs. */
export interface PackageFileInfo {
  name: string;
  version: string;
  arch: string;
}

/**
 * How a package is put back after a step that may have been cut at any point (a kill -9 of
 * clpctl and its package manager together, as a power cut does).
 */
export interface RestorePlan {
  name: string;
  /** The version to put back; null when the package was not installed. */
  version: string | null;
  /** The package file of `version`, kept by clp; null when `version` is null. */
  keptFile: string | null;
  /** The package file the step installs (kept by clp too), whose leftovers are cleaned away. */
  stepFile: string | null;
  /** Paths (relative to the root) of stepFile that were there before the step: never removed. */
  keepPaths: readonly string[];
}

export interface PackageManager {
  readonly kind: 'pacman' | 'dpkg';
  /** The root whose packages this manages (cache and kept files are read only from inside it). */
  readonly root: string;
  /** The local package cache (pacman's pkg folder, apt's archives). */
  readonly cacheDir: string;
  /** The installed version of a package, or null when it is not installed. */
  installedVersion(name: string): Promise<string | null>;
  /** A package file for name@version in the local package cache, or null. */
  findInCache(name: string, version: string): Promise<string | null>;
  /** The versions that package files in the local cache have for `name`. */
  cachedVersions(name: string): Promise<string[]>;
  /**
   * Copies a package file of the currently installed version of `name` into destDir, so the
   * change can be undone; returns its path, or null when no such file can be had.
   */
  keepInstalledVersion(name: string, destDir: string): Promise<string | null>;
  /** Reads name, version and architecture from a package file. */
  inspectFile(file: string): Promise<PackageFileInfo>;
  /** Installs a package file, allowing a downgrade; refuses with CLP_E_BUSY while the database is in use. */
  installFile(file: string): Promise<void>;
  /** Removes an installed package (the undo of installing one that was not there). */
  remove(name: string): Promise<void>;
  /** Refuses with CLP_E_BUSY when another process holds the package database, or left its lock behind. */
  ensureIdle(): Promise<void>;
  /**
   * Before an undo: waits while a process holds the database (the package manager a killed clpctl
   * started may still be finishing), and clears the lock that this step's own package manager left
   * when it was killed with clpctl (a lock created after `since`, epoch milliseconds, that no
   * process holds). Any other lock is refused with CLP_E_BUSY: it is never deleted.
   */
  settle(since: number, log: (line: string) => void, timeoutMs?: number): Promise<void>;
  /**
   * What the package database itself says is wrong with `name` when it should be at `version`
   * (null: not installed): a half-written entry, an interrupted unpack, missing files, another
   * version. Empty when the database and the files agree.
   */
  problems(name: string, version: string | null): Promise<string[]>;
  /**
   * The paths of these package files (relative to the root) that are on disk now without being
   * files of the installed `name`: an undo's clean-up never removes them.
   */
  pathsToKeep(name: string, files: ReadonlyArray<string | null>): Promise<string[]>;
  /** Puts the package back as the plan says, whatever state a cut step left it in; idempotent. */
  restore(plan: RestorePlan, log: (line: string) => void): Promise<void>;
}
