import { engineStatus, explainPatch, installPatch, uninstallPatch } from '@clp/engine';
import type { PatchEngine } from './engine-port.ts';

/** The real engine (libs/engine) behind the fleet loop's port. */
export const localEngine: PatchEngine = {
  async listPatches(root) {
    const status = await engineStatus({ root });
    const installed = status.installed.map((p) => ({ name: p.name, state: 'installed' as const }));
    const names = new Set(installed.map((p) => p.name));
    const failed = status.failed
      .filter((f) => !names.has(f.name))
      .map((f) => ({ name: f.name, state: 'failed' as const }));
    return [...installed, ...failed];
  },
  async install(file, { root, log }) {
    // A fleet update never forces: a refusal or a failed health check is reported as it is.
    const result = await installPatch(file, { root, log, warn: log });
    return { name: result.name };
  },
  async uninstall(name, { root, log }) {
    await uninstallPatch(name, { root, log });
  },
  async check(file, { root, log }) {
    const explanation = await explainPatch(file, { root, log });
    return {
      name: explanation.name,
      problems: explanation.refusals.map((r) => `[${r.rule}] ${r.code}: ${r.message}`),
    };
  },
};
