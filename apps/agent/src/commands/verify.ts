import { basename, resolve } from 'node:path';
import { openPatch } from '@clp/format';
import { TrustStore, verifyPatch } from '@clp/trust';
import { printResult } from '../output.ts';
import { keysDir, requireFile } from './authoring.ts';
import type { RegisterCommand } from './index.ts';

export const verify: RegisterCommand = (program, globals) =>
  program
    .command('verify')
    .description(
      'check a .clp: signed by a trusted, unrevoked key, and every entry as signed (exit 0 only then)',
    )
    .argument('<file>', 'the .clp to check')
    .option('--keys <dir>', 'trusted public keys (*.pub) and revoked list (default: ROOT/etc/clp/keys.d)')
    .action(async (file: string, options: { keys?: string }) => {
      const g = globals();
      const input = resolve(file);
      await requireFile(input, 'patch file');
      const store = await TrustStore.load(await keysDir(g.root, options.keys));
      const archive = await openPatch(input);
      try {
        const manifest = await verifyPatch(archive, store);
        printResult(
          g,
          {
            file: input,
            valid: true,
            name: manifest.patchName,
            keyId: manifest.keyId,
            keyName: manifest.keyName,
            signer: manifest.signer,
            entries: manifest.size,
          },
          () =>
            `${basename(input)}: valid ${manifest.patchName}, ${manifest.size} entries, signed by key ${manifest.keyId} (${manifest.keyName}; signer "${manifest.signer}")`,
        );
      } finally {
        await archive.close();
      }
    });
