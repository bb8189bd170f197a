import type { CommandDoc } from './command-tree.ts';

/** A manual page: its file name (clpctl-admin.8) and roff text. */
export interface ManPage {
  file: string;
  text: string;
}

/** Text safe in roff: backslashes doubled, hyphens literal, no line read as a request. */
export function roff(text: string): string {
  return (
    text
      .replace(/\\/g, '\\e')
      .replace(/-/g, '\\-')
      // groff reads ASCII; other characters (→, …) as their Unicode escapes.
      .replace(
        /[^\t\n\x20-\x7e]/gu,
        (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`,
      )
      .split('\n')
      .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
      .join('\n')
  );
}

function pageName(doc: CommandDoc): string {
  return doc.path.join('-');
}

function preformatted(text: string): string[] {
  return text === '' ? [] : ['.PP', '.nf', roff(text), '.fi'];
}

function optionList(doc: CommandDoc): string[] {
  const lines: string[] = [];
  for (const argument of doc.arguments)
    lines.push('.TP', `\\fI${roff(argument.term)}\\fR`, roff(argument.description));
  for (const option of doc.options)
    lines.push('.TP', `\\fB${roff(option.term)}\\fR`, roff(option.description));
  return lines;
}

/** Every command below DOC, depth first, in the order the help lists them. */
function descendants(doc: CommandDoc): CommandDoc[] {
  return doc.children.flatMap((child) => [child, ...descendants(child)]);
}

function commandSection(doc: CommandDoc): string[] {
  const alias = doc.aliases.length > 0 ? [`Alias: \\fB${roff(doc.aliases.join(', '))}\\fR.`, '.PP'] : [];
  return [
    `.SS "${roff(doc.usage)}"`,
    roff(doc.description),
    '.PP',
    ...alias,
    ...optionList(doc),
    ...preformatted(doc.extraHelp),
  ];
}

function header(doc: CommandDoc, version: string): string[] {
  return [
    `.\\" Generated from clpctl's command definitions (the same ones --help prints); do not edit.`,
    `.TH ${pageName(doc).toUpperCase()} 8 "" "clpctl ${roff(version)}" "Core LivePatch"`,
    '.SH NAME',
    `${roff(pageName(doc))} \\- ${roff(doc.description)}`,
    '.SH SYNOPSIS',
    `.B ${roff(doc.usage)}`,
  ];
}

/** clpctl(8): global options, every command; a command with subcommands gets its own page. */
function programPage(program: CommandDoc, version: string): ManPage {
  const groups = program.children.filter((c) => c.children.length > 0);
  const lines = [
    ...header(program, version),
    '.SH DESCRIPTION',
    'clpctl applies signed .clp patches to this machine as one transaction with backups and rollback, builds and signs patches, and talks to a Core LivePatch server.',
    '.SH OPTIONS',
    ...optionList(program),
    '.SH COMMANDS',
    ...program.children.flatMap((child) =>
      child.children.length > 0
        ? [
            `.SS "${roff(child.usage)}"`,
            roff(child.description),
            '.PP',
            `Subcommands: ${child.children.map((c) => `\\fB${roff(c.path.at(-1)!)}\\fR`).join(', ')}; see \\fB${roff(pageName(child))}\\fR(8).`,
          ]
        : commandSection(child),
    ),
    '.SH EXIT STATUS',
    ...preformatted(program.extraHelp),
    '.SH FILES',
    '.TP',
    '/etc/clp/agent.json',
    "the agent's configuration (clpctl config); mode 0600, it holds the machine credential",
    '.TP',
    '/etc/clp/keys.d/',
    'trusted release public keys (*.pub) and the revoked list',
    '.TP',
    '/var/lib/clp/',
    'installed patches, backups, the journal and the report spool',
    '.TP',
    '/var/log/CLP.log',
    'the log of every transaction',
    '.SH SEE ALSO',
    groups.map((g) => `\\fB${roff(pageName(g))}\\fR(8)`).join(', ') || 'systemctl(1)',
  ];
  return { file: `${pageName(program)}.8`, text: `${lines.join('\n')}\n` };
}

function groupPage(group: CommandDoc, version: string): ManPage {
  const lines = [
    ...header(group, version),
    '.SH DESCRIPTION',
    roff(group.description),
    ...(group.options.length > 0 ? ['.SH OPTIONS', ...optionList(group)] : []),
    ...preformatted(group.extraHelp),
    '.SH COMMANDS',
    ...descendants(group).flatMap(commandSection),
    '.SH SEE ALSO',
    `\\fB${roff(group.path[0]!)}\\fR(8)`,
  ];
  return { file: `${pageName(group)}.8`, text: `${lines.join('\n')}\n` };
}

/** clpctl.8 and one page for each command that has subcommands (clpctl-admin.8, clpctl-config.8, …). */
export function manPages(program: CommandDoc, version: string): ManPage[] {
  return [
    programPage(program, version),
    ...program.children.filter((c) => c.children.length > 0).map((g) => groupPage(g, version)),
  ];
}
