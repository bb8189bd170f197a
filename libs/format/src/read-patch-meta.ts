import { XMLParser } from 'fast-xml-parser';
import { FormatError } from './errors.ts';
import { PatchMeta } from './model.ts';
import { parsePatchName } from './name.ts';
import { decodeXmlText, guardXml } from './xml-guard.ts';
import { ACTION_ELEMENTS, attributeOf, SIMPLE_FIELDS } from './xml-names.ts';

export const PKGINFO_ENTRY = 'PKGINFO.meta';
export const INSTALL_SCRIPTS = ['Install-Script.ps1', 'Install-Patch.ps1'] as const;
export const REMOVE_SCRIPTS = ['Remove-Script.ps1', 'Remove-Patch.ps1'] as const;

type XmlNode = Record<string, unknown> & { ':@'?: Record<string, string> };

interface Draft {
  fields: Record<string, unknown>;
  /** XPath-like location of each action, e.g. `Actions/File[2]`. */
  actionPaths: string[];
}

/**
 * Parses PKGINFO.meta (XML, or the historic INI dialect) and checks it against the patch's
 * entries: every action source must be an entry, and a patch must do something.
 */
export function readPatchMeta(text: string, entryNames: readonly string[]): PatchMeta {
  const body = text.replace(/^\uFEFF/, '');
  const dialect = detectDialect(body);
  const draft = dialect === 'xml' ? draftFromXml(body) : draftFromIni(body);
  const fields = draft.fields;

  if (typeof fields.name !== 'string' || fields.name === '') {
    invalid(dialect === 'xml' ? 'Name: required' : '[Package] Name: required');
  }
  const parsed = parsePatchName(fields.name as string);
  if (fields.series === undefined) fields.series = `CLP${parsed.dateCode}`;

  const names = new Set(entryNames);
  const installScript = INSTALL_SCRIPTS.find((n) => names.has(n));
  const removeScript = REMOVE_SCRIPTS.find((n) => names.has(n));
  if (installScript) fields.installScript = installScript;
  if (removeScript) fields.removeScript = removeScript;

  const result = PatchMeta.safeParse(fields);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue ? locate(issue.path, dialect, draft.actionPaths) : PKGINFO_ENTRY;
    invalid(`${where}: ${issue?.message ?? 'invalid'}`);
  }
  const meta = result.data;

  meta.actions.forEach((action, index) => {
    const where = draft.actionPaths[index] ?? `Actions[${index + 1}]`;
    const needed =
      action.type === 'script'
        ? action.path
        : action.type === 'file' || action.type === 'package'
          ? action.source
          : undefined;
    if (needed !== undefined && !names.has(needed)) {
      throw new FormatError(
        'CLP_E_MISSING_SOURCE',
        `${PKGINFO_ENTRY} ${where} names ${needed}, which is not in the patch; add the file or fix the name`,
        { details: { entry: needed, action: where } },
      );
    }
  });
  if (meta.actions.length === 0 && meta.installScript === undefined) {
    throw new FormatError(
      'CLP_E_EMPTY_PATCH',
      `${meta.name} has no actions and no install script (Install-Script.ps1); a patch must change something`,
      { details: { name: meta.name } },
    );
  }
  return meta;
}

function invalid(message: string): never {
  throw new FormatError('CLP_E_PKGINFO_INVALID', `${PKGINFO_ENTRY}: ${message}`, {
    details: { entry: PKGINFO_ENTRY },
  });
}

function detectDialect(text: string): 'xml' | 'ini' {
  for (const line of text.split(/\r?\n/)) {
    const t = line.trim();
    if (t === '' || t.startsWith(';') || t.startsWith('#')) continue;
    if (t.startsWith('<')) return 'xml';
    if (t.startsWith('[')) return 'ini';
    break;
  }
  invalid('neither XML (<Package>…</Package>) nor the historic INI form ([Package] with Name=…)');
}

/** Maps a zod issue path back to the element or attribute the author wrote. */
function locate(path: readonly PropertyKey[], dialect: 'xml' | 'ini', actionPaths: string[]): string {
  const [head, index, field] = path;
  if (head === 'actions' && typeof index === 'number') {
    const action = actionPaths[index] ?? `Actions[${index + 1}]`;
    return typeof field === 'string' ? `${action}/@${attributeOf(field)}` : action;
  }
  if (head === 'systems' && typeof index === 'number') {
    const system = `Systems/System[${index + 1}]`;
    return typeof field === 'string' ? `${system}/@${attributeOf(field)}` : system;
  }
  const element = Object.entries(SIMPLE_FIELDS).find(([, f]) => f === head)?.[0] ?? String(head);
  return dialect === 'xml' ? element : `[Package] ${element}`;
}

// ---- XML ----

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  trimValues: true,
});

function elementName(node: XmlNode): string | undefined {
  return Object.keys(node).find((k) => k !== ':@' && k !== '#text' && k !== '#comment');
}

function children(node: XmlNode, name: string): XmlNode[] {
  const value = node[name];
  return Array.isArray(value) ? (value as XmlNode[]) : [];
}

function textOf(node: XmlNode, name: string, where: string): string {
  let text = '';
  for (const child of children(node, name)) {
    if (elementName(child) !== undefined) invalid(`${where}: must hold text, not elements`);
    if (typeof child['#text'] === 'string') text += child['#text'];
  }
  return decodeXmlText(text);
}

function attributes(node: XmlNode): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(node[':@'] ?? {})) out[k] = decodeXmlText(String(v));
  return out;
}

function draftFromXml(text: string): Draft {
  guardXml(text, PKGINFO_ENTRY);
  let doc: XmlNode[];
  try {
    doc = parser.parse(text) as XmlNode[];
  } catch (error) {
    throw new FormatError('CLP_E_XML_MALFORMED', `${PKGINFO_ENTRY}: ${(error as Error).message}`, {
      cause: error,
      details: { entry: PKGINFO_ENTRY },
    });
  }
  const roots = doc.filter((n) => elementName(n) !== undefined);
  const root = roots[0];
  if (roots.length !== 1 || !root || elementName(root) !== 'Package') {
    invalid('the document must have one root element <Package>');
  }
  const fields: Record<string, unknown> = { dialect: 'xml', systems: [], actions: [] };
  const actionPaths: string[] = [];
  const seen = new Set<string>();
  for (const child of children(root, 'Package')) {
    const tag = elementName(child);
    if (tag === undefined) continue;
    if (seen.has(tag)) invalid(`${tag}: must appear once`);
    seen.add(tag);
    const field = SIMPLE_FIELDS[tag];
    if (field !== undefined) {
      fields[field] = textOf(child, tag, tag);
    } else if (tag === 'Systems') {
      fields.systems = children(child, tag)
        .filter((n) => elementName(n) !== undefined)
        .map((n) => {
          if (elementName(n) !== 'System')
            invalid(`Systems/${elementName(n)}: unknown element; expected <System>`);
          const a = attributes(n);
          return { os: a.os, minVersion: a['min-version'], maxVersion: a['max-version'] };
        });
    } else if (tag === 'Actions') {
      const counters: Record<string, number> = {};
      const actions: Record<string, unknown>[] = [];
      for (const n of children(child, tag)) {
        const name = elementName(n);
        if (name === undefined) continue;
        counters[name] = (counters[name] ?? 0) + 1;
        const where = `Actions/${name}[${counters[name]}]`;
        const type = ACTION_ELEMENTS[name];
        if (type === undefined)
          invalid(`${where}: unknown action; expected File, Package, Service, Script or Check`);
        actionPaths.push(where);
        actions.push(actionFromAttributes(type, attributes(n), where));
      }
      fields.actions = actions;
    }
    // Other elements are ignored: the format may gain elements, and older readers must not break.
  }
  return { fields, actionPaths };
}

function actionFromAttributes(
  type: string,
  a: Record<string, string>,
  where: string,
): Record<string, unknown> {
  const action: Record<string, unknown> = { type };
  for (const [key, value] of Object.entries(a)) {
    switch (key) {
      case 'expect-sha256':
        action.expectSha256 = value;
        break;
      case 'mode':
        if (!/^0?[0-7]{3,4}$/.test(value))
          invalid(`${where}/@mode: must be octal permission bits such as "0644"`);
        action.mode = Number.parseInt(value, 8);
        break;
      case 'timeout':
        action.timeoutMs = parseDuration(value, `${where}/@timeout`);
        break;
      case 'size':
        if (!/^[1-9][0-9]{0,14}$/.test(value))
          invalid(`${where}/@size: must be a size in bytes such as "438"`);
        action.size = Number(value);
        break;
      case 'within':
        action.withinMs = parseDuration(value, `${where}/@within`);
        break;
      default:
        action[key] = value;
    }
  }
  if (type === 'file' && (a.action === 'add' || a.action === 'replace') && a.source === undefined) {
    invalid(`${where}/@source: required for action="${a.action}" (the new content)`);
  }
  if (type === 'check' && a.within === undefined) invalid(`${where}/@within: required (e.g. within="60s")`);
  return action;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "30s", "5m", "1h", "500ms"; a bare number is seconds. */
export function parseDuration(value: string, where: string): number {
  const m = /^(\d{1,9})(ms|s|m|h)?$/.exec(value.trim());
  const ms = m ? Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 1000) : 0;
  if (!m || ms <= 0) invalid(`${where}: must be a positive duration such as "30s", "5m" or "500ms"`);
  return ms;
}

// ---- INI (historic) ----

const INI_KEYS: Record<string, string> = Object.fromEntries(
  Object.keys(SIMPLE_FIELDS).map((k) => [k.toLowerCase(), k]),
);

function draftFromIni(text: string): Draft {
  const fields: Record<string, unknown> = { dialect: 'ini', systems: [], actions: [] };
  let section: string | undefined;
  let sawPackage = false;
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = header[1]?.trim();
      if (section === 'Package') sawPackage = true;
      return;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) invalid(`line ${i + 1}: expected [Section] or Key=Value`);
    if (section !== 'Package') return;
    const key = INI_KEYS[line.slice(0, eq).trim().toLowerCase()];
    if (key === undefined) return;
    if (seen.has(key)) invalid(`[Package] ${key}: must appear once`);
    seen.add(key);
    const field = SIMPLE_FIELDS[key];
    if (field !== undefined) fields[field] = line.slice(eq + 1).trim();
  });
  if (!sawPackage) invalid('the historic INI form needs a [Package] section');
  return { fields, actionPaths: [] };
}
