/** A system package manager, behind the smallest interface the engine needs. */
export interface PackageFileInfo {
  name: string;
  version: string;
  arch: string;
}

export interface InstallOptions {
  /** Putting a kept package back (undo): files a killed package manager left behind are taken over. */
  restoring?: boolean;
}

export interface PackageManager {
  readonly kind: 'pacman' | 'dpkg';
  /** The local package cache (pacman's pkg folder, apt's archives). */
  readonly cacheDir: string;
  /** The installed version of a package, or null when it is not installed. */
  installedVersion(name: string): Promise<string | null>;
  /** A package file for name@version in the local package cache, or null. */
  findInCache(name: string, version: string): Promise<string | null>;
  /**
   * Copies a package file of the currently installed version of `name` into destDir, so the
   * change can be undone; returns its path, or null when no such file can be had.
   */
  keepInstalledVersion(name: string, destDir: string): Promise<string | null>;
  /** Reads name, version and architecture from a package file. */
  inspectFile(file: string): Promise<PackageFileInfo>;
  /** Installs a package file, allowing a downgrade. */
  installFile(file: string, options?: InstallOptions): Promise<void>;
  /**
   * Waits until no other process is changing this root's package database (after a crash of
   * clpctl, the package manager it started may still be running); clears a lock a killed one left.
   */
  waitIdle(timeoutMs?: number): Promise<void>;
  /** Removes an installed package (the undo of installing one that was not there). */
  remove(name: string): Promise<void>;
}
