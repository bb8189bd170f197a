import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describeCommand } from './command-tree.ts';
import { bashCompletion, fishCompletion, zshCompletion } from './completion.ts';
import { manPages } from './man-page.ts';

/** Where each generated file goes below a share/ folder (the layout of /usr/share). */
export interface GeneratedFile {
  path: string;
  text: string;
}

export function generatedDocs(program: Command, version: string): GeneratedFile[] {
  const tree = describeCommand(program);
  const name = tree.path[0]!;
  return [
    ...manPages(tree, version).map((page) => ({ path: `man/man8/${page.file}`, text: page.text })),
    { path: `bash-completion/completions/${name}`, text: bashCompletion(tree) },
    { path: `zsh/vendor-completions/_${name}`, text: zshCompletion(tree) },
    { path: `fish/vendor_completions.d/${name}.fish`, text: fishCompletion(tree) },
  ];
}

export async function writeDocs(program: Command, version: string, shareDir: string): Promise<string[]> {
  const files = generatedDocs(program, version);
  for (const file of files) {
    await mkdir(join(shareDir, file.path, '..'), { recursive: true });
    await writeFile(join(shareDir, file.path), file.text);
  }
  return files.map((f) => f.path);
}
