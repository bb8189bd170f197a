import { localEngineWith } from '../fleet/engine-adapter.ts';
import type { RegisterCommand } from './index.ts';

function stamp(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

export const daemon: RegisterCommand = (program, globals) =>
  program
    .command('daemon')
    .description(
      'stay running and update on schedule.cron (default daily at 12:00 local time) plus a random delay within schedule.randomDelayMinutes; SIGTERM stops it after the patch being applied; use it where systemd timers are not available',
    )
    .action(async () => {
      const { root, runScriptsOnHost } = globals();
      // Loaded on use: the scheduler and the HTTP client are not needed by other commands.
      const { UpdateDaemon } = await import('../fleet/daemon.ts');
      const daemon = new UpdateDaemon({ root, engine: localEngineWith({ runScriptsOnHost }), log: stamp });
      const stopped = new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          stamp(`${signal}: stopping`);
          void daemon.stop().then(resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      await daemon.start();
      await stopped;
      stamp('daemon stopped');
    });
