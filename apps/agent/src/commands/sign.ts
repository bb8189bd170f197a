import { basename, resolve } from 'node:path';
import { loadPrivateKey, signPatch } from '@clp/trust';
import { printResult } from '../output.ts';
import { requireFile, signerFromKeyFile } from './authoring.ts';
import type { RegisterCommand } from './index.ts';

export const sign: RegisterCommand = (program, globals) =>
  program
    .command('sign')
    .description('sign a .clp with an Ed25519 key: writes a SIGNATURE entry over the manifest of every entry')
    .argument('<file>', 'the .clp to sign (rewritten in place unless -o is given)')
    .requiredOption('--key <file>', 'private key (NAME.key from clpctl keygen)')
    .option('--signer <name>', 'signer label stored in SIGNATURE (default: the key file name)')
    .option('-o, --output <file>', 'write the signed patch here instead of in place')
    .action(async (file: string, options: { key: string; signer?: string; output?: string }) => {
      const input = resolve(file);
      await requireFile(input, 'patch file');
      const key = await loadPrivateKey(resolve(options.key));
      const output = resolve(options.output ?? file);
      const result = await signPatch(input, output, key, options.signer ?? signerFromKeyFile(options.key));
      printResult(
        globals(),
        {
          file: result.file,
          name: result.patchName,
          keyId: result.keyId,
          signer: result.signer,
          entries: result.entries,
        },
        () =>
          `signed ${basename(result.file)} (${result.patchName}, ${result.entries} entries) with key ${result.keyId} as ${result.signer}`,
      );
    });
