import { configFile, loadConfig, saveConfig } from '../fleet/config.ts';
import { configKeyHelp, getConfigValue, redactConfig, setConfigValue } from '../fleet/config-keys.ts';
import { printResult } from '../output.ts';
import type { RegisterCommand } from './index.ts';

function show(value: unknown): string {
  if (value === undefined) return '';
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

export const config: RegisterCommand = (program, globals) => {
  const command = program
    .command('config')
    .description('show or change the agent configuration (ROOT/etc/clp/agent.json)')
    .addHelpText('after', `\nKeys:\n${configKeyHelp()}`);
  command
    .command('get')
    .description('print one value, or the whole configuration (the credential masked)')
    .argument('[key]', 'configuration key, e.g. servers or schedule.cron')
    .action(async (key: string | undefined) => {
      const { root } = globals();
      const current = await loadConfig(root);
      const value = key === undefined ? redactConfig(current) : getConfigValue(current, key);
      // The credential is secret: shown masked unless asked for by name.
      printResult(globals(), key === undefined ? value : { key, value: value ?? null }, () => show(value));
    });
  command
    .command('set')
    .description('set one value; the file is validated and written atomically with mode 0600')
    .argument('<key>', 'configuration key (see the list below)')
    .argument('<value>', 'new value; lists are comma-separated; none clears minAgeDays / releasedBefore')
    .addHelpText('after', `\nKeys:\n${configKeyHelp()}`)
    .action(async (key: string, value: string) => {
      const { root } = globals();
      const next = setConfigValue(root, await loadConfig(root), key, value);
      await saveConfig(root, next);
      const stored = getConfigValue(next, key);
      printResult(
        globals(),
        { key, value: stored ?? null, file: configFile(root) },
        () => `${key} = ${show(stored)}`,
      );
    });
  return command;
};
