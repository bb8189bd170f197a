import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The repo's Node 24 (the system node may be older). */
export const NODE = join(REPO, 'node_modules', '.bin', 'node');
export const CLPCTL = join(REPO, 'apps', 'agent', 'dist', 'clpctl.mjs');
export const SERVER = join(REPO, 'apps', 'server', 'dist', 'server.mjs');

/** Why the end-to-end suite cannot run here, or undefined when it can. */
export function missingBuild(): string | undefined {
  for (const file of [NODE, CLPCTL, SERVER]) {
    if (!existsSync(file)) return `${file} (run npm run build)`;
  }
  return undefined;
}
