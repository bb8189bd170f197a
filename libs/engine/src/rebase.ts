import { join } from 'node:path';
import type { StepRecord } from './step.ts';

/**
 * Step records hold real paths under the root they were made for. A root may be used under
 * another path later (an image prepared with --root /mnt/sys and then booted as /), so records
 * carry their root and are moved to the current one when read back.
 */
export function rebasePath(path: string, from: string, to: string): string {
  if (from === to || !path.startsWith('/')) return path;
  let rel: string;
  if (from === '/') rel = path;
  else if (path === from) rel = '/';
  else if (path.startsWith(`${from}/`)) rel = path.slice(from.length);
  else return path;
  return to === '/' ? rel : join(to, rel);
}

const PATH_FIELDS: Record<StepRecord['kind'], string[]> = {
  file: ['target', 'stage', 'source'],
  script: ['patchDir'],
  package: ['packageFile', 'keptFile'],
  service: [],
};

export function rebaseRecords(records: StepRecord[], from: string | undefined, to: string): StepRecord[] {
  if (from === undefined || from === to) return records;
  return records.map((r) => {
    const undo: Record<string, unknown> = { ...r.undo };
    for (const field of PATH_FIELDS[r.kind]) {
      const value = undo[field];
      if (typeof value === 'string') undo[field] = rebasePath(value, from, to);
    }
    if (r.kind === 'file' && Array.isArray(undo.createdDirs)) {
      undo.createdDirs = (undo.createdDirs as string[]).map((d) => rebasePath(d, from, to));
    }
    return { ...r, undo };
  });
}
