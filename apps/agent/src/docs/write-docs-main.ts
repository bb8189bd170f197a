// Writes clpctl's man pages and shell completions into the share/ folder given as the argument.
import { buildProgram } from '../program.ts';
import { AGENT_VERSION } from '../version.ts';
import { writeDocs } from './generate.ts';

const shareDir = process.argv[2];
if (!shareDir) {
  process.stderr.write('usage: write-docs SHARE_DIR\n');
  process.exit(2);
}
const written = await writeDocs(buildProgram(), AGENT_VERSION, shareDir);
process.stdout.write(`${written.map((f) => `${shareDir}/${f}`).join('\n')}\n`);
