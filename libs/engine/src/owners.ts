import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from './errors.ts';

/** User and group names of one root, read from ROOT/etc/passwd and ROOT/etc/group. */
export class Owners {
  readonly #users: Map<string, number>;
  readonly #groups: Map<string, number>;

  private constructor(users: Map<string, number>, groups: Map<string, number>) {
    this.#users = users;
    this.#groups = groups;
  }

  static async load(root: string): Promise<Owners> {
    return new Owners(await readIds(join(root, 'etc/passwd')), await readIds(join(root, 'etc/group')));
  }

  /** A user name or a number; throws CLP_E_UNKNOWN_OWNER for a name this root does not have. */
  uid(name: string): number {
    return lookup(this.#users, name, 'user', 'etc/passwd');
  }

  gid(name: string): number {
    return lookup(this.#groups, name, 'group', 'etc/group');
  }
}

function lookup(map: Map<string, number>, name: string, what: string, file: string): number {
  const id = map.get(name);
  if (id !== undefined) return id;
  if (/^\d+$/.test(name)) return Number(name);
  // root is 0 on every Unix, also in a bare root folder without etc/passwd.
  if (name === 'root') return 0;
  throw new EngineError(
    'CLP_E_UNKNOWN_OWNER',
    `${what} "${name}" is not in ROOT/${file}; add it or use a numeric id`,
    {
      details: { [what]: name },
    },
  );
}

async function readIds(file: string): Promise<Map<string, number>> {
  const map = new Map<string, number>();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return map;
    throw error;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    const name = fields[0];
    const id = fields[2];
    if (name && id && /^\d+$/.test(id) && !map.has(name)) map.set(name, Number(id));
  }
  return map;
}
