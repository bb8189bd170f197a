import type { Command } from 'commander';
import { adminContext } from '../admin/admin-context.ts';
import { registerFleetCommands } from '../admin/fleet-commands.ts';
import { registerReleaseCommands } from '../admin/release-commands.ts';
import { registerRolloutCommands } from '../admin/rollout-commands.ts';
import { registerTokenCommands } from '../admin/token-commands.ts';
import { registerUserCommands } from '../admin/user-commands.ts';
import { registerWindowCommands } from '../admin/window-commands.ts';
import type { RegisterCommand } from './index.ts';

/** `clpctl admin …`: the release team's and operators' command line against the server's /v1 API. */
export const admin: RegisterCommand = (program) => {
  const command = program
    .command('admin')
    .description(
      'talk to a Core LivePatch server: upload, promote, rollouts, tokens, machines, reports, users, the overview',
    )
    .option('--server <url>', 'server base URL (default: $CLP_SERVER)')
    .option('--token <token>', 'admin API token (default: $CLP_TOKEN)')
    .option(
      '--ca-file <file>',
      "PEM CA the server's https:// certificate must chain to (default: $CLP_CA_FILE, else the system store)",
    )
    .option(
      '--allow-insecure-http',
      'allow plain http:// to a server on another machine (default: $CLP_ALLOW_INSECURE_HTTP=1)',
    )
    .addHelpText(
      'after',
      `
Examples:
  export CLP_SERVER=http://127.0.0.1:8080 CLP_TOKEN=clp_adm_…
  clpctl admin upload CLP1251123.clp
  clpctl admin rollout create CLP1251123 --tier edge --stages 1,10,50,100 --stage-min-minutes 60
  clpctl admin rollout pause ROLLOUT_ID --reason "investigating failures"
  clpctl admin tokens create --tier edge --tags site=paris --expires 7d --uses 50
  clpctl admin machines --tier edge

A 4xx answer prints the server's 'error CODE: message'; an unreachable server exits 8.`,
    );
  registerReleaseCommands(command, adminContext);
  registerRolloutCommands(command, adminContext);
  registerTokenCommands(command, adminContext);
  registerFleetCommands(command, adminContext);
  registerWindowCommands(command, adminContext);
  registerUserCommands(command, adminContext);
  // Usage errors inside the admin tree go through the program's single error boundary too.
  const override = (c: Command) => {
    c.exitOverride();
    for (const sub of c.commands) override(sub);
  };
  override(command);
  return command;
};
