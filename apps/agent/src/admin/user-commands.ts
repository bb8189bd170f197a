import type { Command } from 'commander';
import { printResult } from '../output.ts';
import { adminContext, type ContextOf } from './admin-context.ts';
import type { User } from './api-types.ts';
import { oneOf, parseInteger } from './duration.ts';
import { AdminError } from './errors.ts';
import { readPasswords } from './read-passwords.ts';
import { table, when } from './table.ts';

const ROLES = ['admin', 'release', 'operator', 'viewer'] as const;

function describe(u: User): string {
  return `${u.username} (${u.role}${u.disabled ? ', disabled' : ''})`;
}

/** users list/create/set (admins), and `password`: a user changes their own. */
export function registerUserCommands(admin: Command, contextOf: ContextOf): void {
  const users = admin
    .command('users')
    .description('console users: people who sign in with a name and a password (admins only)');
  users
    .command('list', { isDefault: true })
    .description('list users')
    .option('--limit <n>', 'at most N users (1-1000)', '100')
    .option('--offset <n>', 'skip the first N', '0')
    .action(async (o: { limit: string; offset: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const answer = await ctx.client.get<{ users: User[]; total: number }>('/v1/users', {
        limit: parseInteger(o.limit, '--limit', 1, 1000),
        offset: parseInteger(o.offset, '--offset', 0, Number.MAX_SAFE_INTEGER),
      });
      printResult(ctx, answer, () =>
        [
          table(
            ['NAME', 'ROLE', 'STATE', 'CREATED', 'BY', 'PASSWORD SET'],
            answer.users.map((u) => [
              u.username,
              u.role,
              u.disabled ? 'disabled' : 'active',
              when(u.createdAt),
              u.createdBy,
              when(u.passwordChangedAt),
            ]),
          ),
          `${answer.users.length} of ${answer.total} users`,
        ].join('\n'),
      );
    });
  users
    .command('create')
    .description('create a user; the password is read from stdin (asked for on a terminal)')
    .argument('<name>', 'lowercase letters, digits and . _ -')
    .requiredOption('--role <role>', `what the user may do (${ROLES.join(', ')})`)
    .action(async (name: string, o: { role: string }, cmd: Command) => {
      oneOf(o.role, '--role', ROLES);
      const ctx = contextOf(cmd);
      const [password] = await readPasswords(['Password (at least 12 characters)']);
      const u = await ctx.client.post<User>('/v1/users', { username: name, role: o.role, password });
      printResult(ctx, u, () => `created user ${describe(u)}; they sign in at /console/`);
    });
  users
    .command('set')
    .description("change a user's role, disable or enable them, or set a new password (ends their sessions)")
    .argument('<name>', 'user name or id')
    .option('--role <role>', `the new role (${ROLES.join(', ')})`)
    .option('--disable', 'the user can no longer sign in; their sessions end')
    .option('--enable', 'the user may sign in again')
    .option('--password', 'set a new password, read from stdin (asked for on a terminal)')
    .action(
      async (
        name: string,
        o: { role?: string; disable?: boolean; enable?: boolean; password?: boolean },
        cmd: Command,
      ) => {
        if (o.role !== undefined) oneOf(o.role, '--role', ROLES);
        if (o.disable && o.enable) {
          throw new AdminError('CLP_E_ADMIN_BAD_OPTION', '--disable and --enable: give one of them');
        }
        if (o.role === undefined && !o.disable && !o.enable && !o.password) {
          throw new AdminError(
            'CLP_E_ADMIN_BAD_OPTION',
            'nothing to change; give --role, --disable, --enable or --password',
          );
        }
        const ctx = contextOf(cmd);
        const [password] = o.password ? await readPasswords(['New password']) : [];
        const u = await ctx.client.patch<User>(`/v1/users/${encodeURIComponent(name)}`, {
          ...(o.role !== undefined ? { role: o.role } : {}),
          ...(o.disable ? { disabled: true } : o.enable ? { disabled: false } : {}),
          ...(password !== undefined ? { password } : {}),
        });
        printResult(
          ctx,
          u,
          () => `user ${describe(u)}${o.password || o.disable ? '; their sessions ended' : ''}`,
        );
      },
    );

  admin
    .command('password')
    .description(
      'change your own console password: the current and the new one are read from stdin (asked for on a terminal); no API token needed',
    )
    .argument('<name>', 'your user name')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const ctx = adminContext(cmd, process.env, { requireToken: false });
      const [currentPassword, newPassword] = await readPasswords(['Current password', 'New password']);
      const u = await ctx.client.post<User>('/v1/users/password', {
        username: name,
        currentPassword,
        newPassword,
      });
      printResult(ctx, u, () => `password of ${u.username} changed; every session of ${u.username} ended`);
    });
}
