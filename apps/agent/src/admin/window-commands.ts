import type { Command } from 'commander';
import { printResult } from '../output.ts';
import type { ContextOf } from './admin-context.ts';
import type { MaintenanceWindowItem } from './api-types.ts';
import { AdminError } from './errors.ts';
import { table, when } from './table.ts';

interface TargetOptions {
  tier?: string;
  tag?: string;
}

/** `--tier NAME` or `--tag NAME`, exactly one. */
function target(o: TargetOptions): { kind: 'tier' | 'tag'; name: string } {
  if ((o.tier === undefined) === (o.tag === undefined))
    throw new AdminError('CLP_E_ADMIN_BAD_OPTION', 'name one of --tier NAME or --tag NAME');
  return o.tier !== undefined ? { kind: 'tier', name: o.tier } : { kind: 'tag', name: o.tag! };
}

/** windows list/set/clear: maintenance windows per tier or tag. */
export function registerWindowCommands(admin: Command, contextOf: ContextOf): void {
  const windows = admin
    .command('windows')
    .description('maintenance windows: machines apply releases only inside their window');
  windows
    .command('list', { isDefault: true })
    .description('list the windows set per tier and per tag')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const answer = await ctx.client.get<{ windows: MaintenanceWindowItem[] }>('/v1/maintenance-windows');
      printResult(ctx, answer, () =>
        table(
          ['KIND', 'NAME', 'WINDOW', 'SET BY', 'AT'],
          answer.windows.map((w) => [w.kind, w.name, w.window, w.updatedBy, when(w.updatedAt)]),
        ),
      );
    });
  windows
    .command('set')
    .description("set a tier's or a tag's window (a tag's wins over the tier's)")
    .argument(
      '<window>',
      "days, hours and a time zone, e.g. 'Sat 02:00-04:00 Europe/Paris', 'Mon-Fri 22:00-02:00 UTC'",
    )
    .option('--tier <tier>', 'for the machines of this tier')
    .option('--tag <tag>', 'for the machines with this tag')
    .action(async (window: string, o: TargetOptions, cmd: Command) => {
      const ctx = contextOf(cmd);
      const w = await ctx.client.put<MaintenanceWindowItem>('/v1/maintenance-windows', {
        ...target(o),
        window,
      });
      printResult(ctx, w, () => `${w.kind} ${w.name}: machines apply inside ${w.window}`);
    });
  windows
    .command('clear')
    .description("remove a tier's or a tag's window")
    .option('--tier <tier>', 'the tier')
    .option('--tag <tag>', 'the tag')
    .action(async (o: TargetOptions, cmd: Command) => {
      const ctx = contextOf(cmd);
      const t = target(o);
      const w = await ctx.client.delete<MaintenanceWindowItem>(
        `/v1/maintenance-windows/${t.kind}/${encodeURIComponent(t.name)}`,
      );
      printResult(ctx, w, () => `${w.kind} ${w.name}: window ${w.window} removed`);
    });
}
