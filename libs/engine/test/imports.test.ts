import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '../src');

/** Each source file and the engine files it imports at run time (type-only imports left out). */
async function importGraph(): Promise<Map<string, string[]>> {
  const files = (await readdir(SRC, { recursive: true })).filter((f) => f.endsWith('.ts'));
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = await readFile(join(SRC, file), 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(/^(import|export)(?! type )[^;]*? from '(\.[^']+)'/gms)) {
      deps.push(relative(SRC, normalize(join(SRC, dirname(file), m[2] as string))));
    }
    graph.set(file, deps);
  }
  return graph;
}

/** The import circles of the graph, each as the path that closes it. */
function circles(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const found: string[][] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    path.push(file);
    for (const dep of graph.get(file) ?? []) {
      if (state.get(dep) === 'open') found.push([...path.slice(path.indexOf(dep)), dep]);
      else if (state.get(dep) === undefined) visit(dep);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (state.get(file) === undefined) visit(file);
  return found;
}

describe('the engine reads top-down', () => {
  it('no module of libs/engine imports, through others, a module that imports it', async () => {
    const graph = await importGraph();
    expect(graph.size).toBeGreaterThan(20);
    expect(circles(graph).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('the package managers do not reach up into the transaction, the session or recovery', async () => {
    const graph = await importGraph();
    const upward = [...graph]
      .filter(([file]) => file.startsWith('package-managers/'))
      .flatMap(([file, deps]) =>
        deps.filter((d) => !d.startsWith('package-managers/')).map((d) => `${file} -> ${d}`),
      )
      .filter((edge) =>
        /-> (transaction|session|recover|bookkeeping|undo-table|install|uninstall|pkg-revert)\.ts$/.test(
          edge,
        ),
      );
    expect(upward).toEqual([]);
  });
});
