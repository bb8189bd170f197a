import type { PatchMeta } from './model.ts';

/**
 * The names the XML dialect of PKGINFO.meta gives the model's fields: part of the format (names
 * may be added, none renamed). The reader, the writer and the format reference use these.
 */

/** The simple elements of <Package> (and keys of the INI [Package] section) and their model fields. */
export const SIMPLE_FIELDS: Readonly<Record<string, keyof PatchMeta>> = {
  Name: 'name',
  Version: 'version',
  Architecture: 'architecture',
  Description: 'description',
  Author: 'author',
  Created: 'created',
  Severity: 'severity',
  Series: 'series',
};

/** Action elements under <Actions> and the model's action types. */
export const ACTION_ELEMENTS: Readonly<Record<string, 'file' | 'package' | 'service' | 'script' | 'check'>> =
  {
    File: 'file',
    Package: 'package',
    Service: 'service',
    Script: 'script',
    Check: 'check',
  };

/** Model fields whose XML attribute has another name; every other field is its own attribute. */
export const ATTRIBUTE_OF: Readonly<Record<string, string>> = {
  expectSha256: 'expect-sha256',
  timeoutMs: 'timeout',
  withinMs: 'within',
  minVersion: 'min-version',
  maxVersion: 'max-version',
};

/** The XML attribute of a model field. */
export function attributeOf(field: string): string {
  return ATTRIBUTE_OF[field] ?? field;
}
