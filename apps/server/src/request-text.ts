import { textProblem } from '@clp/protocol';
import { ServerError } from './errors.ts';

/**
 * No request of the API nests deeper than a few levels. A bound keeps the walk linear: every
 * value carries its path, so a body of 100 000 nested brackets (200 KB, sent before any
 * credential to the enrollment route) would otherwise cost quadratic time and memory.
 */
export const MAX_NESTING = 32;

/**
 * Every string of a request's params, query or JSON body is checked here, before any schema or
 * database sees it: a NUL would fail the statement (and the batch it shares with other machines),
 * a lone surrogate cannot be stored as UTF-8. `blocks` names the fields that are logs, which may
 * keep tabs and line ends, as dotted paths with `*` for any array index (`body.reports.*.log`).
 */
export function checkRequestText(value: unknown, where: string, blocks: readonly string[] = []): void {
  const isBlock = (path: string[]) =>
    blocks.some((pattern) => {
      const parts = pattern.split('.');
      return (
        parts.length === path.length &&
        parts.every((p, i) => p === path[i] || (p === '*' && /^\d+$/.test(path[i]!)))
      );
    });
  // Iterative, so that a deeply nested body cannot exhaust the stack.
  const stack: Array<{ value: unknown; path: string[] }> = [{ value, path: [where] }];
  while (stack.length > 0) {
    const { value: v, path } = stack.pop()!;
    if (path.length > MAX_NESTING + 1 && v !== null && typeof v === 'object')
      refuse(
        path.join('.'),
        `is nested deeper than ${MAX_NESTING} levels; no request of this API needs that`,
      );
    if (typeof v === 'string') {
      const problem = textProblem(v, isBlock(path) ? 'block' : 'line');
      if (problem) refuse(path.join('.'), problem);
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], path: [...path, String(i)] });
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>);
      for (const [key] of entries) {
        const problem = textProblem(key);
        if (problem) refuse(path.join('.'), `has a key that ${problem}`);
      }
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        stack.push({ value: child, path: [...path, key] });
      }
    }
  }
}

function refuse(field: string, problem: string): never {
  throw new ServerError('CLP_E_VALIDATION', `${field}: ${problem}`, { field });
}
