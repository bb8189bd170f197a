import { engineStatus, explainPatch, installPatch, uninstallPatch } from '@clp/engine';
import type { PatchEngine } from './engine-port.ts';

/**
 * The real engine (libs/engine) behind the fleet loop's port. Under a --root other than /, a
 * patch's scripts run only when `runScriptsOnHost` (clpctl --run-scripts-on-host) allows it.
 */
export function localEngineWith(options: { runScriptsOnHost: boolean }): PatchEngine {
  const { runScriptsOnHost } = options;
  return {
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
      const result = await installPatch(file, { root, log, warn: log, runScriptsOnHost });
      return { name: result.name };
    },
    async uninstall(name, { root, log }) {
      await uninstallPatch(name, { root, log, runScriptsOnHost });
    },
    async check(file, { root, log }) {
      const explanation = await explainPatch(file, { root, log, runScriptsOnHost });
      return {
        name: explanation.name,
        problems: explanation.refusals.map((r) => `[${r.rule}] ${r.code}: ${r.message}`),
      };
    },
  };
}

/** The engine as clpctl runs it without --run-scripts-on-host. */
export const localEngine: PatchEngine = localEngineWith({ runScriptsOnHost: false });
