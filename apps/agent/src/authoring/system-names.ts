import { readFile } from 'node:fs/promises';

/** Names of user and group ids from this machine's /etc/passwd and /etc/group. */
export class SystemNames {
  readonly #users: Map<number, string>;
  readonly #groups: Map<number, string>;

  private constructor(users: Map<number, string>, groups: Map<number, string>) {
    this.#users = users;
    this.#groups = groups;
  }

  static async load(etc = '/etc'): Promise<SystemNames> {
    return new SystemNames(await readNames(`${etc}/passwd`), await readNames(`${etc}/group`));
  }

  /** The user's name, or the number when this machine has no name for it. */
  user(uid: number): string {
    return this.#users.get(uid) ?? (uid === 0 ? 'root' : String(uid));
  }

  group(gid: number): string {
    return this.#groups.get(gid) ?? (gid === 0 ? 'root' : String(gid));
  }
}

async function readNames(file: string): Promise<Map<number, string>> {
  const map = new Map<number, string>();
  const text = await readFile(file, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':');
    if (name && id && /^\d+$/.test(id) && !map.has(Number(id))) map.set(Number(id), name);
  }
  return map;
}
