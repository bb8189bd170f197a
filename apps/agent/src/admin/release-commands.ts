import { resolve } from 'node:path';
import type { Command } from 'commander';
import { printResult } from '../output.ts';
import type { ContextOf } from './admin-context.ts';
import type { Release } from './api-types.ts';
import { parseInteger } from './duration.ts';
import { AdminError } from './errors.ts';
import { resolveRelease } from './resolve-release.ts';
import { fields, table, when } from './table.ts';

function releaseFields(r: Release): string {
  return fields([
    ['id', r.id],
    ['name', r.name],
    ['series', r.series],
    ['version', r.version],
    ['arch', r.arch],
    ['size', `${r.size} bytes`],
    ['signer key', r.signerKeyId],
    ['uploaded', `${when(r.uploadedAt)} by ${r.uploadedBy}`],
    ['tiers', r.tiers.join(', ')],
    ['yanked', r.yanked ? 'yes' : 'no'],
  ]);
}

/** upload, releases list/show/yank, promote. */
export function registerReleaseCommands(admin: Command, contextOf: ContextOf): void {
  admin
    .command('upload')
    .description('upload a signed .clp release (streamed); the server verifies its signature')
    .argument('<file>', 'the .clp file')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const { status, body: release } = await ctx.client.upload<Release>('/v1/releases', resolve(file));
      // 200 instead of 201: the server has these exact bytes already, and nothing changed.
      const alreadyUploaded = status === 200;
      printResult(ctx, { ...release, alreadyUploaded }, () =>
        alreadyUploaded
          ? `${release.name} was already uploaded at ${when(release.uploadedAt)} by ${release.uploadedBy} (the same bytes); nothing changed\n${releaseFields(release)}`
          : `uploaded ${release.name}\n${releaseFields(release)}`,
      );
    });

  const releases = admin.command('releases').description('list, show and yank releases');
  releases
    .command('list', { isDefault: true })
    .description('list releases, newest first')
    .option('--name <name>', 'only this patch name')
    .option('--series <series>', 'only this series')
    .option('--tier <tier>', 'only releases promoted to this tier')
    .option('--yanked <yes|no>', 'only yanked (yes) or not yanked (no) releases')
    .option('--limit <n>', 'at most N releases (1-1000)', '100')
    .action(
      async (
        o: { name?: string; series?: string; tier?: string; yanked?: string; limit: string },
        cmd: Command,
      ) => {
        const ctx = contextOf(cmd);
        let yanked: string | undefined;
        if (o.yanked !== undefined) {
          if (!['yes', 'no'].includes(o.yanked))
            throw new AdminError('CLP_E_ADMIN_BAD_OPTION', `--yanked ${o.yanked}: expected yes or no`);
          yanked = o.yanked === 'yes' ? 'true' : 'false';
        }
        const answer = await ctx.client.get<{ releases: Release[] }>('/v1/releases', {
          name: o.name,
          series: o.series,
          tier: o.tier,
          yanked,
          limit: parseInteger(o.limit, '--limit', 1, 1000),
        });
        printResult(ctx, answer, () =>
          table(
            ['ID', 'NAME', 'ARCH', 'SIZE', 'UPLOADED', 'TIERS', 'YANKED'],
            answer.releases.map((r) => [
              r.id,
              r.name,
              r.arch,
              r.size,
              when(r.uploadedAt),
              r.tiers.join(',') || '-',
              r.yanked ? 'yes' : '',
            ]),
          ),
        );
      },
    );
  releases
    .command('show')
    .description('show one release')
    .argument('<release>', 'id (sha256), a unique prefix of it, or the patch name')
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveRelease(ctx.client, ref);
      const release = await ctx.client.get<Release>(`/v1/releases/${id}`);
      printResult(ctx, release, () => releaseFields(release));
    });
  releases
    .command('yank')
    .description('yank a release: no machine is offered it any more')
    .argument('<release>', 'id (sha256), a unique prefix of it, or the patch name')
    .option('--reason <text>', 'why (kept in the log)')
    .action(async (ref: string, o: { reason?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveRelease(ctx.client, ref);
      const before = await ctx.client.get<Release>(`/v1/releases/${id}`);
      if (before.yanked) {
        printResult(
          ctx,
          { ...before, alreadyYanked: true },
          () => `${before.name} was already yanked at ${when(before.yankedAt)}; nothing changed`,
        );
        return;
      }
      const release = await ctx.client.post<Release>(
        `/v1/releases/${id}/yank`,
        o.reason ? { reason: o.reason } : {},
      );
      printResult(
        ctx,
        { ...release, alreadyYanked: false },
        () => `yanked ${release.name} (${release.id}); no machine is offered it any more`,
      );
    });

  admin
    .command('promote')
    .description('promote a release to a tier (e.g. from beta to stable)')
    .argument('<release>', 'id (sha256), a unique prefix of it, or the patch name')
    .requiredOption('--to <tier>', 'the tier to promote the release to')
    .option('--from <tier>', 'refuse unless the release is already in this tier')
    .action(async (ref: string, o: { to: string; from?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveRelease(ctx.client, ref);
      if (o.from) {
        const current = await ctx.client.get<Release>(`/v1/releases/${id}`);
        if (!current.tiers.includes(o.from)) {
          throw new AdminError(
            'CLP_E_ADMIN_BAD_OPTION',
            `release ${current.name} is not in tier ${o.from} (it is in: ${current.tiers.join(', ') || 'no tier'}); promote it there first or drop --from`,
          );
        }
      }
      const release = await ctx.client.post<Release>(`/v1/releases/${id}/promote`, { tier: o.to });
      printResult(
        ctx,
        release,
        () => `promoted ${release.name} to ${o.to} (now in: ${release.tiers.join(', ')})`,
      );
    });
}
