import { basename, resolve } from 'node:path';
import { isClpError, openPatch, type PatchMeta } from '@clp/format';
import { parseSignature, readSignatureEntry, SIGNATURE_ENTRY, TrustStore, verifyPatch } from '@clp/trust';
import { printResult } from '../output.ts';
import { keysDir, requireFile } from './authoring.ts';
import type { RegisterCommand } from './index.ts';

interface SignatureReport {
  keyId: string | null;
  signer: string | null;
  /** True only when the whole patch verifies against the keys folder. */
  trusted: boolean;
  keysDir: string;
  problem: { code: string; message: string } | null;
}

interface InspectReport {
  file: string;
  kind: string;
  meta: PatchMeta;
  entries: Array<{ name: string; size: number; sha256: string }>;
  signature: SignatureReport | null;
}

function describeAction(a: PatchMeta['actions'][number]): string {
  switch (a.type) {
    case 'file':
      return `file ${a.action} ${a.path}${a.source ? ` from ${a.source}` : ''}${a.mode !== undefined ? ` mode ${a.mode.toString(8).padStart(4, '0')}` : ''}${a.expectSha256 === undefined ? '' : a.expectSha256 === 'absent' ? ', only where it is absent' : `, only over sha256 ${a.expectSha256.slice(0, 12)}…`}`;
    case 'package':
      return `package ${a.name} → ${a.version}${a.source ? ` from ${a.source}` : a.url ? ` from ${a.url}` : ''}`;
    case 'service':
      return `service ${a.action} ${a.unit}`;
    case 'script':
      return `script ${a.when} ${a.path}`;
    case 'check':
      return `check ${a.command ?? `unit ${a.unit}`} within ${a.withinMs / 1000}s`;
  }
}

function human(r: InspectReport): string {
  const m = r.meta;
  const lines = [
    `${m.name}  version ${m.version}  ${m.architecture}  (${r.kind}, ${m.dialect} PKGINFO.meta)`,
    ...(m.description ? [`  ${m.description}`] : []),
    ...(m.author ? [`  author   ${m.author}`] : []),
    ...(m.created ? [`  created  ${m.created}`] : []),
    ...(m.severity ? [`  severity ${m.severity}`] : []),
    `  series   ${m.series}`,
    ...m.systems.map(
      (s) =>
        `  system   ${s.os}${s.minVersion ? ` >= ${s.minVersion}` : ''}${s.maxVersion ? ` <= ${s.maxVersion}` : ''}`,
    ),
    'actions:',
    ...(m.actions.length === 0 ? ['  (none)'] : m.actions.map((a) => `  ${describeAction(a)}`)),
    ...(m.installScript ? [`  install script ${m.installScript}`] : []),
    ...(m.removeScript ? [`  remove script  ${m.removeScript}`] : []),
    'entries:',
    ...r.entries.map((e) => `  ${e.sha256}  ${String(e.size).padStart(10)}  ${e.name}`),
  ];
  const s = r.signature;
  if (s === null) lines.push('signature: none (unsigned)');
  else {
    lines.push(`signature: key ${s.keyId ?? '?'}, signer "${s.signer ?? '?'}"`);
    lines.push(
      s.trusted
        ? `  trusted by ${s.keysDir}`
        : `  NOT trusted by ${s.keysDir}: ${s.problem?.code}: ${s.problem?.message}`,
    );
  }
  return lines.join('\n');
}

export const inspect: RegisterCommand = (program, globals) =>
  program
    .command('inspect')
    .description(
      'show a .clp: metadata, actions, entries (size, sha256) and signer (and whether it is trusted)',
    )
    .argument('<file>', 'the .clp to show')
    .option('--keys <dir>', 'trusted public keys to judge the signer by (default: ROOT/etc/clp/keys.d)')
    .action(async (file: string, options: { keys?: string }) => {
      const g = globals();
      const input = resolve(file);
      await requireFile(input, 'patch file');
      const dir = await keysDir(g.root, options.keys);
      const archive = await openPatch(input);
      try {
        const hashes = await archive.hashEntries();
        const entries = [...hashes].map(([name, d]) => ({ name, size: d.size, sha256: d.sha256 }));
        let signature: SignatureReport | null = null;
        if (archive.has(SIGNATURE_ENTRY)) {
          signature = { keyId: null, signer: null, trusted: false, keysDir: dir, problem: null };
          try {
            const doc = parseSignature(await readSignatureEntry(archive));
            signature.keyId = doc.keyId;
            signature.signer = doc.signer;
            await verifyPatch(archive, await TrustStore.load(dir));
            signature.trusted = true;
          } catch (error) {
            if (!isClpError(error)) throw error;
            signature.problem = { code: error.code, message: error.message };
          }
        }
        const report: InspectReport = {
          file: input,
          kind: archive.kind,
          meta: archive.meta,
          entries,
          signature,
        };
        printResult(g, report, () => `${basename(input)}\n${human(report)}`);
      } finally {
        await archive.close();
      }
    });
