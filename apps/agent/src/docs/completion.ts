import type { CommandDoc } from './command-tree.ts';

/** Every command that can be completed after, keyed by its path below the program ('' is the program). */
interface Node {
  key: string;
  commands: Array<{ name: string; description: string }>;
  options: Array<{ flag: string; description: string }>;
}

function nodes(doc: CommandDoc): Node[] {
  const key = doc.path.slice(1).join(' ');
  const self: Node = {
    key,
    commands: doc.children.flatMap((c) =>
      [c.path.at(-1)!, ...c.aliases].map((name) => ({ name, description: c.description })),
    ),
    options: doc.options.flatMap((o) => o.flags.map((flag) => ({ flag, description: o.description }))),
  };
  return [self, ...doc.children.flatMap(nodes)];
}

/** A line of the description short enough for a completion menu. */
function short(text: string): string {
  const first = text.split('\n')[0]!;
  return first.length > 70 ? `${first.slice(0, 67)}...` : first;
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export function bashCompletion(program: CommandDoc): string {
  const all = nodes(program);
  const name = program.path[0]!;
  const fn = `_${name}`;
  const cases = (pick: (n: Node) => string[]) =>
    all.map((n) => `    ${shellQuote(n.key)}) echo ${shellQuote(pick(n).join(' '))} ;;`).join('\n');
  return `# bash completion for ${name}; generated from its command definitions (the ones --help prints).
${fn}_commands() {
  case "$1" in
${cases((n) => n.commands.map((c) => c.name))}
  esac
}
${fn}_options() {
  case "$1" in
${cases((n) => n.options.map((o) => o.flag))}
  esac
}
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" word i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    [[ $word == -* ]] && continue
    if [[ " $(${fn}_commands "$path") " == *" $word "* ]]; then path="\${path:+$path }$word"; fi
  done
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(${fn}_options "$path")" -- "$cur")
  else
    mapfile -t COMPREPLY < <(compgen -W "$(${fn}_commands "$path")" -- "$cur")
    [[ \${#COMPREPLY[@]} -eq 0 ]] && mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  fi
  return 0
}
complete -o filenames -F ${fn} ${name}
`;
}

function zshItem(name: string, description: string): string {
  return shellQuote(`${name.replace(/:/g, '\\:')}:${short(description)}`);
}

export function zshCompletion(program: CommandDoc): string {
  const all = nodes(program);
  const name = program.path[0]!;
  const fn = `_${name}`;
  const cases = all
    .map(
      (n) =>
        `    ${shellQuote(n.key)})\n      commands=(${n.commands.map((c) => zshItem(c.name, c.description)).join(' ')})\n      options=(${n.options.map((o) => zshItem(o.flag, o.description)).join(' ')})\n      ;;`,
    )
    .join('\n');
  return `#compdef ${name}
# zsh completion for ${name}; generated from its command definitions (the ones --help prints).
${fn}() {
  local path_="" word
  local -a commands options children
  for word in \${words[2,CURRENT-1]}; do
    [[ $word == -* ]] && continue
    ${fn}_node "$path_"
    children=(\${commands%%:*})
    if (( \${children[(Ie)$word]} )); then path_="\${path_:+$path_ }$word"; fi
  done
  ${fn}_node "$path_"
  if [[ $PREFIX == -* ]]; then
    _describe -t options option options
  elif (( \${#commands} )); then
    _describe -t commands command commands
  else
    _files
  fi
}
${fn}_node() {
  commands=() options=()
  case "$1" in
${cases}
  esac
}
${fn} "$@"
`;
}

function fishString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function fishCompletion(program: CommandDoc): string {
  const all = nodes(program);
  const name = program.path[0]!;
  const fn = `__${name}`;
  const children = all
    .map(
      (n) =>
        `        case ${fishString(n.key)}\n            printf '%s\\n' ${n.commands.map((c) => fishString(c.name)).join(' ')}`,
    )
    .join('\n');
  const lines: string[] = [];
  for (const n of all) {
    const at = `-n "${fn}_at ${fishString(n.key)}"`;
    for (const c of n.commands)
      lines.push(
        `complete -c ${name} ${at} -f -a ${fishString(c.name)} -d ${fishString(short(c.description))}`,
      );
    for (const o of n.options) {
      const flag = o.flag.startsWith('--') ? `-l ${o.flag.slice(2)}` : `-s ${o.flag.slice(1)}`;
      lines.push(`complete -c ${name} ${at} ${flag} -d ${fishString(short(o.description))}`);
    }
  }
  return `# fish completion for ${name}; generated from its command definitions (the ones --help prints).
function ${fn}_children
    switch "$argv[1]"
${children}
    end
end
function ${fn}_path
    set -l path ''
    for word in (commandline -opc)[2..-1]
        string match -q -- '-*' $word; and continue
        if contains -- $word (${fn}_children $path)
            set path (string trim -- "$path $word")
        end
    end
    echo $path
end
function ${fn}_at
    test "$(${fn}_path)" = "$argv[1]"
end
${lines.join('\n')}
`;
}
