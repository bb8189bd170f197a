import { ACTION_ELEMENTS, type Action } from '@clp/format';

const ELEMENT_OF = Object.fromEntries(
  Object.entries(ACTION_ELEMENTS).map(([element, type]) => [type, element]),
);

/** How an author finds each action in PKGINFO.meta: `Actions/File[2] (replace /etc/motd)`. */
export function actionNames(actions: readonly Action[]): string[] {
  const counters: Record<string, number> = {};
  return actions.map((a) => {
    const element = ELEMENT_OF[a.type] ?? a.type;
    counters[element] = (counters[element] ?? 0) + 1;
    return `Actions/${element}[${counters[element]}] (${describe(a)})`;
  });
}

function describe(a: Action): string {
  switch (a.type) {
    case 'file':
      return `${a.action} ${a.path}`;
    case 'package':
      return `${a.name} ${a.version}`;
    case 'service':
      return `${a.action} ${a.unit}`;
    case 'script':
      return `${a.when} ${a.path}`;
    case 'check':
      return a.command ?? `unit ${a.unit}`;
  }
}
