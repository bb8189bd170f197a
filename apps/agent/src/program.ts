import { resolve } from 'node:path';
import { checkRoot } from '@clp/engine';
import { Command } from 'commander';
import { COMMANDS } from './commands/index.ts';
import { EXIT_CODE_HELP } from './exit-codes.ts';
import type { GlobalOptions } from './output.ts';
import { pointUsageErrorsToHelp, refuseUnknownSubcommands } from './usage.ts';
import { AGENT_VERSION } from './version.ts';

/**
 * The whole command tree: what `clpctl` parses, what `--help` prints, and what the man pages
 * and shell completions are generated from, so that none of them can say something else.
 */
export function buildProgram(
  /** Where commander's usage errors go instead of stderr (the program's error boundary prints them). */
  outputError?: (text: string) => void,
): Command {
  const program = new Command('clpctl')
    .description('Core LivePatch agent: build, sign, verify, install and take back .clp patches')
    .version(AGENT_VERSION, '-V, --version')
    .option(
      '--root <dir>',
      "operate on the system under DIR instead of / (state, keys and log too); a patch's scripts and checks still run on this host, not in DIR",
      '/',
    )
    .option(
      '--run-scripts-on-host',
      "with --root: let a patch's scripts run (on this host, with CLP_ROOT=DIR; nothing confines them to DIR); refused otherwise",
      false,
    )
    .option('--json', 'machine-readable output (results on stdout, errors on stderr)', false)
    .option('-v, --verbose', 'say more', false)
    .addHelpText('after', `\n${EXIT_CODE_HELP}`)
    .showSuggestionAfterError(true)
    .exitOverride()
    // A mistyped --root is an error for every command, before any of them creates a file under it.
    .hook('preAction', async () => {
      const { root } = program.opts<GlobalOptions>();
      if (root !== '/') await checkRoot(resolve(root));
    });
  // Set before the commands are added: each copies its parent's output settings when made.
  if (outputError) program.configureOutput({ outputError });
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  for (const register of COMMANDS) {
    const command = register(program, globals);
    command.exitOverride();
  }
  refuseUnknownSubcommands(program);
  if (outputError) pointUsageErrorsToHelp(program, outputError);
  return program;
}
