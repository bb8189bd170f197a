import { MachineFacts, ReportStatus } from '@clp/protocol';
import type { Command } from 'commander';
import { printResult } from '../output.ts';
import type { ContextOf } from './admin-context.ts';
import type { Machine, Report, Tier } from './api-types.ts';
import { oneOf, parseDuration, parseInteger } from './duration.ts';
import { AdminError } from './errors.ts';
import { resolveRelease } from './resolve-release.ts';
import { resolveRollout } from './resolve-rollout.ts';
import { fields, short, table, when, whenExact } from './table.ts';

const ARCHITECTURES = MachineFacts.shape.arch.options;
const REPORT_STATUSES = ReportStatus.options;

function installedNames(m: Machine): string {
  return (
    m.installed.map((p) => `${String(p.name)}${p.state === 'failed' ? '(failed)' : ''}`).join(',') || '-'
  );
}

/** machines, reports, tiers. */
export function registerFleetCommands(admin: Command, contextOf: ContextOf): void {
  const machines = admin.command('machines').description('enrolled machines');
  machines
    .command('list', { isDefault: true })
    .description('list machines')
    .option('--tier <tier>', 'only this tier')
    .option('--tag <tag>', 'only machines with this tag')
    .option('--arch <arch>', `only this architecture (${ARCHITECTURES.join(', ')})`)
    .option('--os <id>', 'only this OS id')
    .option('--hostname <name>', 'only this host name')
    .option('--installed <release>', 'only machines with this release installed (id, prefix or name)')
    .option('--limit <n>', 'at most N machines (1-1000)', '100')
    .option('--offset <n>', 'skip the first N', '0')
    .action(async (o: Record<string, string | undefined>, cmd: Command) => {
      if (o.arch !== undefined) oneOf(o.arch, '--arch', ARCHITECTURES);
      const ctx = contextOf(cmd);
      const installed = o.installed ? await resolveRelease(ctx.client, o.installed) : undefined;
      const answer = await ctx.client.get<{ machines: Machine[]; total: number }>('/v1/machines', {
        tier: o.tier,
        tag: o.tag,
        arch: o.arch,
        os: o.os,
        hostname: o.hostname,
        installed,
        limit: parseInteger(o.limit ?? '100', '--limit', 1, 1000),
        offset: parseInteger(o.offset ?? '0', '--offset', 0, Number.MAX_SAFE_INTEGER),
      });
      printResult(ctx, answer, () =>
        [
          table(
            ['ID', 'HOSTNAME', 'TIER', 'ARCH', 'OS', 'TAGS', 'LAST SEEN', 'INSTALLED'],
            answer.machines.map((m) => [
              m.id,
              m.hostname,
              m.tier,
              m.arch,
              `${m.os.id} ${m.os.version}`.trim(),
              m.tags.join(',') || '-',
              when(m.lastSeenAt),
              installedNames(m),
            ]),
          ),
          `${answer.machines.length} of ${answer.total} machines`,
        ].join('\n'),
      );
    });
  machines
    .command('show')
    .description('show a machine')
    .argument('<id>', 'machine id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const m = await ctx.client.get<Machine>(`/v1/machines/${encodeURIComponent(id)}`);
      printResult(ctx, m, () =>
        fields([
          ['id', m.id],
          ['hostname', m.hostname],
          ['tier', m.tier],
          ['tags', m.tags.join(', ')],
          ['arch', m.arch],
          ['os', `${m.os.id} ${m.os.version}`],
          ['enrolled', when(m.enrolledAt)],
          ['last seen', when(m.lastSeenAt)],
          ['installed', installedNames(m)],
        ]),
      );
    });

  machines
    .command('revoke')
    .description(
      "revoke a machine's credential: its next call is refused, and its id enrolls again only after a rekey",
    )
    .argument('<id>', 'machine id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const m = await ctx.client.post<Machine>(`/v1/machines/${encodeURIComponent(id)}/revoke`, {});
      printResult(ctx, m, () => `revoked the credential of ${m.id} (${m.hostname})`);
    });
  machines
    .command('rekey')
    .description(
      'let a machine enroll again under its id (reinstalled, or its credential lost): its credential stops working now, and its next clpctl enroll is let in without it',
    )
    .argument('<id>', 'machine id')
    .option(
      '--expires <duration>',
      'how long the machine has to enroll again (e.g. 2h, 1d, 7d; at most 30d)',
      '1d',
    )
    .option('--reason <text>', 'why (kept in the server log)')
    .action(async (id: string, o: { expires: string; reason?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const seconds = parseDuration(o.expires, '--expires');
      if (seconds < 60 || seconds > 30 * 86_400) {
        throw new AdminError('CLP_E_ADMIN_BAD_OPTION', `--expires ${o.expires}: from 1m to 30d`);
      }
      const m = await ctx.client.post<Machine>(`/v1/machines/${encodeURIComponent(id)}/rekey`, {
        expiresInSeconds: seconds,
        ...(o.reason !== undefined ? { reason: o.reason } : {}),
      });
      printResult(
        ctx,
        m,
        () =>
          `re-keyed ${m.id} (${m.hostname}): its old credential is refused; it may enroll again until ${when(m.rekeyUntil)} (clpctl enroll URL TOKEN on the machine)`,
      );
    });

  admin
    .command('reports')
    .description('agent reports, newest first (reports that arrived together: last event first)')
    .option('--rollout <id>', 'only reports of this rollout (id or a unique prefix)')
    .option('--machine <id>', 'only reports of this machine')
    .option('--status <status>', `only this status (${REPORT_STATUSES.join(', ')})`)
    .option(
      '--release <release>',
      'only this release (id, prefix or name; filtered among the fetched reports)',
    )
    .option('--limit <n>', 'fetch at most N reports (1-1000)', '100')
    .action(async (o: Record<string, string | undefined>, cmd: Command) => {
      if (o.status !== undefined) oneOf(o.status, '--status', REPORT_STATUSES);
      const limit = parseInteger(o.limit ?? '100', '--limit', 1, 1000);
      const ctx = contextOf(cmd);
      const releaseId = o.release ? await resolveRelease(ctx.client, o.release) : undefined;
      const rollout = o.rollout ? await resolveRollout(ctx.client, o.rollout) : undefined;
      const answer = await ctx.client.get<{ reports: Report[] }>('/v1/reports', {
        rollout,
        machine: o.machine,
        status: o.status,
        limit,
      });
      const reports = releaseId ? answer.reports.filter((r) => r.releaseId === releaseId) : answer.reports;
      printResult(ctx, { reports }, () =>
        table(
          ['AT', 'MACHINE', 'RELEASE', 'NAME', 'STATUS', 'ERROR', 'ROLLOUT'],
          reports.map((r) => [
            whenExact(r.at),
            r.machineId,
            short(r.releaseId),
            r.name,
            r.status,
            r.errorCode,
            r.rolloutId,
          ]),
        ),
      );
    });

  const tiers = admin.command('tiers').description('release tiers (edge, beta, stable, …)');
  const tierTable = (list: readonly Tier[]) =>
    table(
      ['POSITION', 'NAME', 'DESCRIPTION'],
      list.map((t) => [t.position, t.name, t.description || '-']),
    );
  tiers
    .command('list', { isDefault: true })
    .description('list tiers in order')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const answer = await ctx.client.get<{ tiers: Tier[] }>('/v1/tiers');
      printResult(ctx, answer, () => tierTable(answer.tiers));
    });
  tiers
    .command('create')
    .description('create a tier (placed last unless --position is given)')
    .argument('<name>', 'lowercase letters, digits and -')
    .option('--position <n>', 'place in the order (0 first)')
    .option('--description <text>', 'what the tier is for')
    .action(async (name: string, o: { position?: string; description?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const t = await ctx.client.post<Tier>('/v1/tiers', {
        name,
        ...(o.position !== undefined ? { position: parseInteger(o.position, '--position', 0, 1000) } : {}),
        ...(o.description !== undefined ? { description: o.description } : {}),
      });
      printResult(ctx, t, () => `created tier ${t.name} at position ${t.position}`);
    });
  tiers
    .command('set')
    .description("change a tier's position or description")
    .argument('<name>', 'tier name')
    .option('--position <n>', 'place in the order (0 first)')
    .option('--description <text>', 'what the tier is for')
    .action(async (name: string, o: { position?: string; description?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const t = await ctx.client.patch<Tier>(`/v1/tiers/${encodeURIComponent(name)}`, {
        ...(o.position !== undefined ? { position: parseInteger(o.position, '--position', 0, 1000) } : {}),
        ...(o.description !== undefined ? { description: o.description } : {}),
      });
      printResult(
        ctx,
        t,
        () => `tier ${t.name}: position ${t.position}, ${t.description || 'no description'}`,
      );
    });
  tiers
    .command('order')
    .description('set the order of all tiers, e.g. edge,beta,stable')
    .argument('<names>', 'every tier, comma-separated, first to last')
    .action(async (names: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const answer = await ctx.client.put<{ tiers: Tier[] }>('/v1/tiers/order', {
        order: names
          .split(',')
          .map((n) => n.trim())
          .filter(Boolean),
      });
      printResult(ctx, answer, () => tierTable(answer.tiers));
    });
}
