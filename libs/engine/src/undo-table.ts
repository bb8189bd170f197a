import { undoFileStep } from './file-step.ts';
import { undoPackageStep } from './package-managers/package-step.ts';
import { undoScriptStep } from './script-step.ts';
import { undoServiceStep } from './service-step.ts';
import type { StepKind, UndoStep } from './step.ts';

/** How each kind of step is taken back, from its journaled record alone. */
export const UNDO: Record<StepKind, UndoStep> = {
  file: undoFileStep,
  package: undoPackageStep,
  service: undoServiceStep,
  script: undoScriptStep,
};

/**
 * Whether a step's undo is safe to run even if the step never started. File undo is (it checks
 * what is there); a script's or a service's undo would act on a step that did not happen.
 */
export function undoIsSafeUnstarted(kind: StepKind): boolean {
  return kind === 'file';
}
