import { ClpError } from '@clp/format';
import { CommanderError } from 'commander';
import { reportError } from './output.ts';
import { buildProgram } from './program.ts';

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.exitCode === 0
      )
        return 0;
      // commander already printed its message; normalise to our usage code.
      return 2;
    }
    const json = argv.includes('--json');
    return reportError(error, json);
  }
}

// No top-level await: the single executable (SEA) runs this bundle as CommonJS.
void main(process.argv)
  .catch((error: unknown) => reportError(error, false))
  .then((code) => {
    process.exitCode = code;
  });

export { ClpError };
