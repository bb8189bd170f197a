import type { Command, Help } from 'commander';

/** One command as its help shows it: what the man pages and completions are written from. */
export interface CommandDoc {
  /** Words from the program name, e.g. ['clpctl', 'admin', 'rollout', 'create']. */
  path: string[];
  usage: string;
  description: string;
  aliases: string[];
  arguments: Array<{ term: string; description: string }>;
  options: Array<{ term: string; flags: string[]; description: string }>;
  /** Text added after the generated help (examples, keys, exit codes), as `--help` prints it. */
  extraHelp: string;
  children: CommandDoc[];
}

/** What `--help` prints for COMMAND, captured instead of written. */
export function helpOutput(command: Command): string {
  let out = '';
  const saved = command.configureOutput();
  command.configureOutput({ ...saved, writeOut: (text) => (out += text), outputError: () => {} });
  try {
    command.outputHelp();
  } finally {
    command.configureOutput(saved);
  }
  return out;
}

function extraHelpOf(command: Command): string {
  const full = helpOutput(command);
  const base = command.helpInformation();
  const at = full.indexOf(base);
  if (at === -1) return '';
  return `${full.slice(0, at)}${full.slice(at + base.length)}`.trim();
}

/** Walks the live command tree: a command added anywhere appears here without other changes. */
export function describeCommand(command: Command, parents: string[] = []): CommandDoc {
  const help: Help = command.createHelp();
  const path = [...parents, command.name()];
  return {
    path,
    usage: `${path.join(' ')} ${command.usage()}`.trim(),
    description: help.commandDescription(command),
    aliases: command.aliases(),
    arguments: help.visibleArguments(command).map((argument) => ({
      term: help.argumentTerm(argument),
      description: help.argumentDescription(argument),
    })),
    options: help.visibleOptions(command).map((option) => ({
      term: help.optionTerm(option),
      flags: [option.short, option.long].filter((flag): flag is string => Boolean(flag)),
      description: help.optionDescription(option),
    })),
    extraHelp: extraHelpOf(command),
    children: help
      .visibleCommands(command)
      .filter((child) => child.name() !== 'help')
      .map((child) => describeCommand(child, path)),
  };
}
