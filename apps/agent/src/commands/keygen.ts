import { resolve } from 'node:path';
import { writeKeyPair } from '@clp/trust';
import { printResult } from '../output.ts';
import type { RegisterCommand } from './index.ts';

export const keygen: RegisterCommand = (program, globals) =>
  program
    .command('keygen')
    .description(
      'generate an Ed25519 signing key pair: NAME.key (private, 0600) and NAME.pub; never overwrites',
    )
    .requiredOption('--name <name>', 'key name, used for the file names (e.g. release-2025)')
    .option('--out <dir>', 'folder to write the key pair into', '.')
    .action(async (options: { name: string; out: string }) => {
      const written = await writeKeyPair(resolve(options.out), options.name);
      printResult(globals(), written, () =>
        [
          `key id      ${written.keyId}`,
          `private key ${written.keyFile}  (keep it offline; never copy it to machines)`,
          `public key  ${written.pubFile}  (copy to /etc/clp/keys.d/ on machines that trust it)`,
        ].join('\n'),
      );
    });
