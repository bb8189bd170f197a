import type { Action, PatchMeta } from './model.ts';
import { encodeXmlText } from './xml-guard.ts';

function attrs(pairs: Array<[string, string | number | undefined]>): string {
  return pairs
    .filter((p): p is [string, string | number] => p[1] !== undefined)
    .map(([k, v]) => ` ${k}="${encodeXmlText(String(v))}"`)
    .join('');
}

function duration(ms: number | undefined): string | undefined {
  if (ms === undefined) return undefined;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function actionXml(a: Action): string {
  switch (a.type) {
    case 'file':
      return `<File${attrs([
        ['action', a.action],
        ['path', a.path],
        ['source', a.source],
        ['expect-sha256', a.expectSha256],
        ['sha256', a.sha256],
        ['mode', a.mode === undefined ? undefined : a.mode.toString(8).padStart(4, '0')],
        ['owner', a.owner],
        ['group', a.group],
      ])}/>`;
    case 'package':
      return `<Package${attrs([
        ['action', a.action],
        ['name', a.name],
        ['version', a.version],
        ['source', a.source],
        ['url', a.url],
        ['sha256', a.sha256],
        ['size', a.size],
      ])}/>`;
    case 'service':
      return `<Service${attrs([
        ['action', a.action],
        ['unit', a.unit],
      ])}/>`;
    case 'script':
      return `<Script${attrs([
        ['when', a.when],
        ['path', a.path],
        ['timeout', duration(a.timeoutMs)],
      ])}/>`;
    case 'check':
      return `<Check${attrs([
        ['command', a.command],
        ['unit', a.unit],
        ['within', duration(a.withinMs)],
      ])}/>`;
  }
}

/** Writes PKGINFO.meta in the XML dialect (install/remove scripts are found by entry name, not written). */
export function serializePatchMeta(meta: PatchMeta): string {
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<Package>'];
  const simple: Array<[string, string | undefined]> = [
    ['Name', meta.name],
    ['Version', meta.version],
    ['Architecture', meta.architecture],
    ['Description', meta.description],
    ['Author', meta.author],
    ['Created', meta.created],
    ['Severity', meta.severity],
    ['Series', meta.series],
  ];
  for (const [tag, value] of simple)
    if (value !== undefined) lines.push(`  <${tag}>${encodeXmlText(value)}</${tag}>`);
  if (meta.systems.length > 0) {
    lines.push('  <Systems>');
    for (const s of meta.systems) {
      lines.push(
        `    <System${attrs([
          ['os', s.os],
          ['min-version', s.minVersion],
          ['max-version', s.maxVersion],
        ])}/>`,
      );
    }
    lines.push('  </Systems>');
  }
  if (meta.actions.length > 0) {
    lines.push('  <Actions>');
    for (const a of meta.actions) lines.push(`    ${actionXml(a)}`);
    lines.push('  </Actions>');
  }
  lines.push('</Package>', '');
  return lines.join('\n');
}
