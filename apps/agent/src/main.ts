import { startupSnapshot } from 'node:v8';
import { ClpError } from '@clp/format';
import { CommanderError } from 'commander';
import { EXIT } from './exit-codes.ts';
import { reportError } from './output.ts';
import { buildProgram } from './program.ts';
import { unknownHelpTopic, usageMessage } from './usage.ts';

async function main(argv: string[]): Promise<number> {
  // Commander's usage errors are kept and printed by the error boundary, as every error is.
  let usageError = '';
  const program = buildProgram((text) => {
    usageError += text;
  });
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    const json = argv.includes('--json');
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.exitCode === 0
      )
        return 0;
      // `clpctl admin` alone shows its help on stderr: a usage error, but nothing more to say.
      if (error.code === 'commander.help') {
        const typo = unknownHelpTopic(program, argv.slice(2));
        return typo === undefined ? EXIT.usage : reportError(new ClpError('CLP_E_USAGE', typo), json);
      }
      return reportError(new ClpError('CLP_E_USAGE', usageMessage(usageError || error.message)), json);
    }
    return reportError(error, json);
  }
}

function start(): void {
  // `clpctl --help | head` closes the pipe early: that is the reader's choice, not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  void main(process.argv)
    .catch((error: unknown) => reportError(error, false))
    .then((code) => {
      process.exitCode = code;
    });
}

// No top-level await: the single executable (SEA) runs this bundle as CommonJS. It is built with a
// startup snapshot: the bundle's modules are evaluated once at build time and the program starts
// from that heap, here, at run time.
if (startupSnapshot.isBuildingSnapshot()) startupSnapshot.setDeserializeMainFunction(start);
else start();
