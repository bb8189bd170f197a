import { z } from 'zod';

/** Architectures a patch can target. `any` applies everywhere. */
export const Architecture = z.enum(['x86_64', 'aarch64', 'any']);
export type Architecture = z.infer<typeof Architecture>;

export const Severity = z.enum(['low', 'medium', 'high', 'critical']);
export type Severity = z.infer<typeof Severity>;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (a sha256)');
/** An absolute path on the target system, normalised: no `..`, `.`, `//`, or trailing slash. */
const targetPath = z
  .string()
  .regex(/^\/[^\0]*$/, 'must be an absolute path')
  .refine((p) => p === '/' || !p.endsWith('/'), 'must not end with /')
  .refine(
    (p) =>
      !p
        .split('/')
        .slice(1)
        .some((s) => s === '' || s === '.' || s === '..'),
    'must be normalised (no //, . or ..)',
  );
/** A path inside the archive: relative, normalised. */
const entryPath = z
  .string()
  .min(1)
  .refine(
    (p) => !p.startsWith('/') && !p.split('/').some((s) => s === '' || s === '.' || s === '..'),
    'must be a relative path inside the patch',
  );

export const FileAction = z.object({
  type: z.literal('file'),
  action: z.enum(['add', 'replace', 'remove']),
  path: targetPath,
  source: entryPath.optional(),
  /** sha256 of what must be there now; `absent` means nothing may be there. Omitted: any content. */
  expectSha256: z.union([sha256Hex, z.literal('absent')]).optional(),
  /** sha256 of the new content (add/replace). */
  sha256: sha256Hex.optional(),
  /** Permission bits, e.g. 0o644. */
  mode: z.number().int().min(0).max(0o7777).optional(),
  owner: z.string().min(1).optional(),
  group: z.string().min(1).optional(),
});
export type FileAction = z.infer<typeof FileAction>;

export const PackageAction = z.object({
  type: z.literal('package'),
  action: z.literal('set-version'),
  name: z.string().regex(/^[A-Za-z0-9@._+-]+$/, 'must be a package name'),
  version: z.string().regex(/^[A-Za-z0-9.:~_+-]+$/, 'must be a package version'),
  /** A package file inside the patch. */
  source: entryPath.optional(),
  /** A URL the package file may be fetched from: https:// (verified by sha256, which a URL requires). */
  url: z.string().url().optional(),
  sha256: sha256Hex.optional(),
  /**
   * The package file's size in bytes, signed with the rest: a download from `url` that grows past
   * it is cut off and refused. Without it, the installing machine's cap applies.
   */
  size: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
});
export type PackageAction = z.infer<typeof PackageAction>;

export const ServiceAction = z.object({
  type: z.literal('service'),
  action: z.enum(['reload', 'restart']),
  unit: z.string().regex(/^[A-Za-z0-9@._:\\-]+$/, 'must be a systemd unit name'),
});
export type ServiceAction = z.infer<typeof ServiceAction>;

export const ScriptAction = z.object({
  type: z.literal('script'),
  when: z.enum(['pre', 'post']),
  path: entryPath,
  /** Milliseconds; default 300 s. */
  timeoutMs: z.number().int().positive().optional(),
});
export type ScriptAction = z.infer<typeof ScriptAction>;

export const CheckAction = z
  .object({
    type: z.literal('check'),
    command: z.string().min(1).optional(),
    unit: z.string().min(1).optional(),
    /** Window in milliseconds in which the check must pass. */
    withinMs: z.number().int().positive(),
  })
  .refine((c) => c.command !== undefined || c.unit !== undefined, 'a check needs a command or a unit');
export type CheckAction = z.infer<typeof CheckAction>;

export const Action = z.discriminatedUnion('type', [
  FileAction,
  PackageAction,
  ServiceAction,
  ScriptAction,
  CheckAction,
]);
export type Action = z.infer<typeof Action>;

export const TargetSystem = z.object({
  /** os-release ID, e.g. `vincent`, `arch`, `debian`. */
  os: z.string().min(1),
  minVersion: z.string().optional(),
  maxVersion: z.string().optional(),
});
export type TargetSystem = z.infer<typeof TargetSystem>;

export const PatchMeta = z.object({
  /** `CLP` + revision + YYMMDD, e.g. CLP1251123. */
  name: z.string(),
  version: z.string().min(1),
  architecture: Architecture,
  description: z.string().optional(),
  author: z.string().optional(),
  created: z.string().optional(),
  severity: Severity.optional(),
  /** Patches of one series replace each other in order; defaults to `CLP` + YYMMDD of the name. */
  series: z.string().min(1),
  systems: z.array(TargetSystem),
  actions: z.array(Action),
  /** Entry names of the install / remove scripts (Install-Script.ps1 or historic Install-Patch.ps1). */
  installScript: z.string().optional(),
  removeScript: z.string().optional(),
  /** Which PKGINFO.meta dialect the patch was written in. */
  dialect: z.enum(['xml', 'ini']),
});
export type PatchMeta = z.infer<typeof PatchMeta>;
