import { ClpError } from '@clp/format';
import { Command, CommanderError } from 'commander';
import { COMMANDS } from './commands/index.ts';
import { EXIT_CODE_HELP } from './exit-codes.ts';
import { type GlobalOptions, reportError } from './output.ts';
import { AGENT_VERSION } from './version.ts';

function buildProgram(): Command {
  const program = new Command('clpctl')
    .description('Core LivePatch agent: build, sign, verify, install and take back .clp patches')
    .version(AGENT_VERSION, '-V, --version')
    .option('--root <dir>', 'operate on the system under DIR instead of / (state, keys and log too)', '/')
    .option('--json', 'machine-readable output (results on stdout, errors on stderr)', false)
    .option('-v, --verbose', 'say more', false)
    .addHelpText('after', `\n${EXIT_CODE_HELP}`)
    .showSuggestionAfterError(true)
    .exitOverride();
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  for (const register of COMMANDS) {
    const command = register(program, globals);
    command.exitOverride();
  }
  return program;
}

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

// Run only as the program, not when imported by tests.
process.exitCode = await main(process.argv).catch((error: unknown) => reportError(error, false));

export { ClpError };
