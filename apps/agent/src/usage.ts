import { ClpError } from '@clp/format';
import type { Command } from 'commander';

/** Commander's own message without its `error: ` prefix, for `error CLP_E_USAGE: …` and --json. */
export function usageMessage(text: string): string {
  return text
    .replace(/^error:\s*/, '')
    .trim()
    .replace(/\n+/g, ' ');
}

/** The command's path as typed, e.g. `clpctl admin releases`. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * A command that lists by default (`admin releases` = `admin releases list`) would pass an
 * unknown word on to `list` as an argument ("too many arguments for 'list'"). This says instead
 * that the word is not a subcommand, and names the ones there are.
 */
export function refuseUnknownSubcommands(command: Command): void {
  if (command.commands.length > 0) {
    command.hook('preSubcommand', (parent, sub) => {
      const first = parent.args[0];
      if (first === undefined || first.startsWith('-') || first === 'help') return;
      if (first === sub.name() || sub.aliases().includes(first)) return;
      const known = parent.commands.map((c) => c.name()).join(', ');
      throw new ClpError(
        'CLP_E_USAGE',
        `unknown subcommand '${first}' of '${commandPath(parent)}'; it has: ${known} (see '${commandPath(parent)} --help')`,
        { details: { command: commandPath(parent), subcommand: first } },
      );
    });
  }
  for (const sub of command.commands) refuseUnknownSubcommands(sub);
}

/**
 * Commander says what is wrong ("missing required argument 'file'") but not where to look: each
 * command's usage error ends with the `--help` of the command it came from.
 */
export function pointUsageErrorsToHelp(command: Command, outputError: (text: string) => void): void {
  const help = `see '${commandPath(command)} --help'`;
  command.configureOutput({ outputError: (text) => outputError(`${text.trimEnd()}; ${help}\n`) });
  for (const sub of command.commands) pointUsageErrorsToHelp(sub, outputError);
}

/**
 * `clpctl help instal` makes commander print the whole help and stop, saying nothing of the typo:
 * the topic that names no command, as a usage error (undefined when the help asked for was found).
 */
export function unknownHelpTopic(program: Command, args: string[]): string | undefined {
  const words = args.filter((a) => !a.startsWith('-'));
  let command = program;
  for (const [i, word] of words.entries()) {
    const named = (name: string | undefined) =>
      command.commands.find((c) => c.name() === name || c.aliases().includes(name ?? ''));
    if (word === 'help') {
      const topic = words[i + 1];
      if (topic === undefined || named(topic)) return undefined;
      const path = commandPath(command);
      return `unknown command '${topic}' for '${path} help'; '${path} --help' lists the commands`;
    }
    const sub = named(word);
    if (sub === undefined) return undefined;
    command = sub;
  }
  return undefined;
}
