/**
 * docs/patch-format.md against the format's model: every element, attribute, allowed value, limit
 * and error code the model has is in the document, and the document names nothing the model does
 * not have, so that neither changes without the other.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  ACTION_ELEMENTS,
  Architecture,
  attributeOf,
  CheckAction,
  DEFAULT_LIMITS,
  FileAction,
  FORMAT_ERROR_CODES,
  PackageAction,
  ScriptAction,
  ServiceAction,
  Severity,
  SIMPLE_FIELDS,
  TargetSystem,
} from '@clp/format';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { exitCodeFor } from '../src/exit-codes.ts';

const DOC = readFileSync(join(resolve(import.meta.dirname, '../../..'), 'docs/patch-format.md'), 'utf8');

/** The rows (cells, trimmed) of the first table after the heading line `heading`. */
function tableAfter(heading: string): string[][] {
  const lines = DOC.split('\n');
  const start = lines.indexOf(heading);
  expect(start, `docs/patch-format.md has no heading "${heading}"`).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  let i = start + 1;
  while (i < lines.length && !lines[i]!.startsWith('|')) {
    expect(lines[i]!.startsWith('#'), `no table under "${heading}"`).toBe(false);
    i++;
  }
  for (; i < lines.length && lines[i]!.startsWith('|'); i++) {
    rows.push(
      lines[i]!.split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  }
  return rows.slice(2); // the header and its --- line
}

/** The `code`-quoted words of a cell. */
const quoted = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

type Shape = Record<string, z.ZodType & { isOptional(): boolean }>;

/** The fixed values a field allows (an enum or a literal), or undefined for free text. */
function allowedValues(field: z.ZodType): string[] | undefined {
  const def = (field as unknown as { def: { type: string; values?: unknown[]; entries?: object } }).def;
  if (def.type === 'enum') return Object.values(def.entries ?? {}).map(String);
  if (def.type === 'literal') return (def.values ?? []).map(String);
  return undefined;
}

const ACTIONS: Record<string, Shape> = {
  File: FileAction.shape as unknown as Shape,
  Package: PackageAction.shape as unknown as Shape,
  Service: ServiceAction.shape as unknown as Shape,
  Script: ScriptAction.shape as unknown as Shape,
  Check: (CheckAction as unknown as { shape: Shape }).shape,
};

describe('docs/patch-format.md against the model', () => {
  it('documents every action element the reader knows, and no other', () => {
    expect(Object.keys(ACTIONS).sort()).toEqual(Object.keys(ACTION_ELEMENTS).sort());
    const documented = DOC.split('\n')
      .filter((l) => l.startsWith('### Action `<'))
      .map((l) => /^### Action `<(\w+)>`$/.exec(l)?.[1]);
    for (const element of Object.keys(ACTION_ELEMENTS)) expect(documented).toContain(element);
  });

  it.each(Object.keys(ACTIONS))(
    'lists every attribute of <%s>, whether it is required, and its allowed values',
    (element) => {
      const shape = ACTIONS[element]!;
      const rows = tableAfter(`### Action \`<${element}>\``);
      const fields = Object.keys(shape).filter((f) => f !== 'type');
      expect(rows.map((r) => quoted(r[0]!)[0]).sort()).toEqual(fields.map(attributeOf).sort());
      for (const field of fields) {
        const row = rows.find((r) => quoted(r[0]!)[0] === attributeOf(field))!;
        const required = !shape[field]!.isOptional();
        expect(row[1] === 'yes', `<${element}> @${attributeOf(field)}: required is "${row[1]}"`).toBe(
          required,
        );
        const values = allowedValues(shape[field]!);
        if (values)
          expect(quoted(row[2]!).sort(), `<${element}> @${attributeOf(field)}`).toEqual(values.sort());
      }
    },
  );

  it('lists every attribute of <System>', () => {
    const rows = tableAfter('### `<System>`');
    const shape = TargetSystem.shape as unknown as Shape;
    expect(rows.map((r) => quoted(r[0]!)[0]).sort()).toEqual(Object.keys(shape).map(attributeOf).sort());
    for (const [field, schema] of Object.entries(shape)) {
      const row = rows.find((r) => quoted(r[0]!)[0] === attributeOf(field))!;
      expect(row[1] === 'yes', `<System> @${attributeOf(field)}`).toBe(!schema.isOptional());
    }
  });

  it('lists every element of <Package> with the allowed architectures and severities', () => {
    const rows = tableAfter('### `<Package>`');
    const elements = rows.map((r) => /^`<(\w+)>`$/.exec(r[0]!)?.[1]);
    expect(elements.sort()).toEqual([...Object.keys(SIMPLE_FIELDS), 'Systems', 'Actions'].sort());
    const values = (name: string) => quoted(rows.find((r) => r[0] === `\`<${name}>\``)![2]!).sort();
    expect(values('Architecture')).toEqual([...Architecture.options].sort());
    expect(values('Severity')).toEqual([...Severity.options].sort());
    // Name, Version and Architecture are the ones a reader cannot do without.
    expect(rows.filter((r) => r[1] === 'yes').map((r) => r[0])).toEqual([
      '`<Name>`',
      '`<Version>`',
      '`<Architecture>`',
    ]);
  });

  it('lists every key of the historic INI form', () => {
    const rows = tableAfter('## The historic INI form');
    expect(rows.map((r) => quoted(r[0]!)[0]).sort()).toEqual(Object.keys(SIMPLE_FIELDS).sort());
  });

  it('states every limit with its value', () => {
    const rows = tableAfter('## Limits');
    const unit: Record<string, number> = { GiB: 1024 ** 3, MiB: 1024 ** 2 };
    const bytesOf = (cell: string): number => {
      const m = /^([\d,]+)\s*(GiB|MiB)?/.exec(cell)!;
      return Number(m[1]!.replaceAll(',', '')) * (m[2] ? unit[m[2]]! : 1);
    };
    expect(rows.map((r) => quoted(r[0]!)[0]).sort()).toEqual(Object.keys(DEFAULT_LIMITS).sort());
    for (const [name, value] of Object.entries(DEFAULT_LIMITS)) {
      const row = rows.find((r) => quoted(r[0]!)[0] === name)!;
      expect(bytesOf(row[1]!), name).toBe(value);
    }
  });

  it('names every error code of the format once, with the exit code clpctl gives it', () => {
    const rows = tableAfter('## Errors');
    const codes = rows.map((r) => quoted(r[0]!)[0]);
    expect(codes).toEqual([...FORMAT_ERROR_CODES]);
    for (const row of rows) expect(Number(row[1]), quoted(row[0]!)[0]).toBe(exitCodeFor(quoted(row[0]!)[0]!));
    // Codes named anywhere else in the text exist too.
    const known = new Set<string>(FORMAT_ERROR_CODES);
    for (const code of new Set(DOC.match(/CLP_E_[A-Z_]+/g))) {
      if (!known.has(code)) expect(exitCodeFor(code), `${code} is not a code clpctl knows`).not.toBe(1);
    }
  });
});
