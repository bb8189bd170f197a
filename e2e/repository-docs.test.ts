import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './support/paths.ts';

/*
 * The repository stands on its own: what its files cite is in it. Every Markdown document named
 * anywhere exists, and every bar (P1…, R1…) named in code or docs is stated in bench/README.md.
 */

const tracked = execFileSync('git', ['ls-files'], { cwd: REPO, encoding: 'utf8' })
  .split('\n')
  .filter((f) => f !== '' && existsSync(join(REPO, f)))
  .filter((f) => /\.(ts|mjs|js|lua|md|sh|json|yml|yaml|conf|service|timer|hook)$|PKGBUILD$/.test(f))
  .filter((f) => !f.startsWith('db/migrations/meta/') && f !== 'package-lock.json');
const text = new Map(tracked.map((f) => [f, readFileSync(join(REPO, f), 'utf8')]));

describe('the repository cites only what it holds', () => {
  it('names no design, goals or style document from outside it', () => {
    const outside = /\bGOALS\b|DESIGN(\.md| §)|STYLE\.md/;
    const citing = [...text].filter(([, body]) => outside.test(body)).map(([file]) => file);
    expect(citing).toEqual([]);
  });

  it('every Markdown document it names exists', () => {
    const names = new Set(tracked.map((f) => f.split('/').pop()));
    const missing: string[] = [];
    for (const [file, body] of text) {
      // The benchmarks write their results as bench/results/NAME.md when they run.
      if (file.startsWith('bench/') && file !== 'bench/README.md') continue;
      for (const [, name] of body.matchAll(/(?<![\w/.-])((?:[\w.-]+\/)*[\w.-]+\.md)\b/g)) {
        if (name === undefined || name.startsWith('bench/results/')) continue;
        const found =
          existsSync(join(REPO, name)) || existsSync(join(REPO, dirname(file), name)) || names.has(name);
        if (!found) missing.push(`${file}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every bar named in code and docs is stated in bench/README.md', () => {
    const stated = new Set(
      [...text.get('bench/README.md')!.matchAll(/^\| ([PR]\d+) \|/gm)].map((m) => m[1]!),
    );
    expect(stated.size).toBe(20);
    const named = new Set<string>();
    for (const body of text.values()) {
      for (const m of body.matchAll(/\b[Bb]ars? ([PR]\d+)(?:[–-]([PR]\d+))?/g)) {
        named.add(m[1]!);
        if (m[2]) named.add(m[2]);
      }
    }
    expect(named.size).toBeGreaterThan(5);
    expect([...named].filter((id) => !stated.has(id))).toEqual([]);
  });

  it('the operator notes the README promises exist and cover what it says they do', () => {
    const operating = text.get('docs/operating.md');
    expect(operating).toBeDefined();
    for (const topic of [
      '## Backups',
      '## Upgrades and migrations',
      '## Release keys',
      '## Admin tokens',
      '## What to watch in /metrics',
    ])
      expect(operating).toContain(topic);
    expect(text.get('README.md')).toContain('docs/operating.md');
    expect(text.get('README.md')).toContain('docs/patch-format.md');
    expect(text.get('examples/README.md')).toContain('docs/patch-format.md');
  });
});
