import type { Command } from 'commander';
import { printResult } from '../output.ts';
import type { ContextOf } from './admin-context.ts';
import type { ApiToken, EnrollmentToken } from './api-types.ts';
import { parseDuration, parseInteger, parseList } from './duration.ts';
import { AdminError } from './errors.ts';
import { table, when } from './table.ts';

const API_ROLES = ['admin', 'release', 'operator', 'viewer'] as const;
const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** tokens (enrollment tokens for machines) and api-tokens (admin API tokens with a role). */
export function registerTokenCommands(admin: Command, contextOf: ContextOf): void {
  const tokens = admin.command('tokens').description('enrollment tokens with which machines enroll');
  tokens
    .command('create')
    .description('make an enrollment token for a tier and tags; the secret is shown only now')
    .requiredOption('--tier <tier>', 'tier the enrolled machines join')
    .option('--tags <tags>', 'tags given to the enrolled machines (comma-separated; repeatable)', collect, [])
    .option('--expires <duration>', 'how long the token is valid (e.g. 1h, 7d; at least 1m)', '7d')
    .option('--uses <n>', 'how many machines may enroll with it', '1')
    .action(async (o: { tier: string; tags: string[]; expires: string; uses: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const created = await ctx.client.post<EnrollmentToken>('/v1/enrollment-tokens', {
        tier: o.tier,
        tags: parseList(o.tags),
        expiresInSeconds: parseDuration(o.expires, '--expires'),
        uses: parseInteger(o.uses, '--uses', 1, 1_000_000),
      });
      printResult(ctx, created, () =>
        [
          `enrollment token ${created.id} for tier ${created.tier}${created.tags.length ? ` (tags ${created.tags.join(',')})` : ''}`,
          `uses ${created.usesLeft}, expires ${created.expiresAt}`,
          'secret (shown only now):',
          `  ${created.token}`,
          `enroll a machine with: clpctl enroll ${ctx.client.server} ${created.token}`,
        ].join('\n'),
      );
    });
  tokens
    .command('list', { isDefault: true })
    .description('list enrollment tokens (never their secrets)')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const answer = await ctx.client.get<{ tokens: EnrollmentToken[] }>('/v1/enrollment-tokens');
      printResult(ctx, answer, () =>
        table(
          ['ID', 'TIER', 'TAGS', 'USES LEFT', 'EXPIRES', 'REVOKED', 'BY'],
          answer.tokens.map((t) => [
            t.id,
            t.tier,
            t.tags.join(',') || '-',
            t.usesLeft,
            when(t.expiresAt),
            t.revoked ? 'yes' : '',
            t.createdBy,
          ]),
        ),
      );
    });
  tokens
    .command('revoke')
    .description('revoke an enrollment token')
    .argument('<id>', 'token id (not the secret)')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const t = await ctx.client.post<EnrollmentToken>(
        `/v1/enrollment-tokens/${encodeURIComponent(id)}/revoke`,
      );
      printResult(ctx, t, () => `revoked enrollment token ${t.id}`);
    });

  const api = admin.command('api-tokens').description('admin API tokens with a role (admin only)');
  api
    .command('create')
    .description(`make an API token; roles: ${API_ROLES.join(', ')}; the secret is shown only now`)
    .requiredOption('--role <role>', 'admin, release (upload), operator (rollouts) or viewer')
    .option('--name <name>', 'who or what uses it', 'clpctl')
    .option('--expires <duration>', 'how long the token is valid (e.g. 90d); default: no expiry')
    .action(async (o: { role: string; name: string; expires?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      if (!(API_ROLES as readonly string[]).includes(o.role)) {
        throw new AdminError(
          'CLP_E_ADMIN_BAD_OPTION',
          `--role ${o.role}: expected one of ${API_ROLES.join(', ')}`,
        );
      }
      const created = await ctx.client.post<ApiToken>('/v1/admin-tokens', {
        name: o.name,
        role: o.role,
        ...(o.expires ? { expiresInSeconds: parseDuration(o.expires, '--expires') } : {}),
      });
      printResult(ctx, created, () =>
        [
          `API token ${created.id} (${created.role}, ${created.name})`,
          'secret (shown only now):',
          `  ${created.token}`,
        ].join('\n'),
      );
    });
  api
    .command('list', { isDefault: true })
    .description('list API tokens (never their secrets)')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const answer = await ctx.client.get<{ tokens: ApiToken[] }>('/v1/admin-tokens');
      printResult(ctx, answer, () =>
        table(
          ['ID', 'NAME', 'ROLE', 'CREATED', 'EXPIRES', 'REVOKED'],
          answer.tokens.map((t) => [
            t.id,
            t.name,
            t.role,
            when(t.createdAt),
            when(t.expiresAt),
            t.revoked ? 'yes' : '',
          ]),
        ),
      );
    });
  api
    .command('revoke')
    .description('revoke an API token')
    .argument('<id>', 'token id (not the secret)')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const t = await ctx.client.post<ApiToken>(`/v1/admin-tokens/${encodeURIComponent(id)}/revoke`);
      printResult(ctx, t, () => `revoked API token ${t.id} (${t.name})`);
    });
}
