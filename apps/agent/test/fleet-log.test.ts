import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetLog } from '../src/fleet/fleet-log.ts';
import { removeAll, tempDir } from './fleet-harness.ts';

describe("the fleet loop's lines in CLP.log", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('clp-fleet-log-');
  });
  afterAll(async () => {
    await removeAll(dir);
  });

  it('are appended to ROOT/var/log/CLP.log with a timestamp and "fleet:"', async () => {
    const root = join(dir, 'a');
    await mkdir(root);
    const log = fleetLog(root);
    log.log('polled\nnothing to do');
    await log.flush();
    const text = await readFile(join(root, 'var/log/CLP.log'), 'utf8');
    expect(text).toMatch(/^\S+Z fleet: polled\n\S+Z fleet: nothing to do\n$/);
  });

  it('never go through a link at the log: the file it points to outside the root is left as it was', async () => {
    const root = join(dir, 'b');
    await mkdir(join(root, 'var/log'), { recursive: true });
    const outside = join(dir, 'outside.txt');
    await writeFile(outside, 'not a log\n');
    await symlink(outside, join(root, 'var/log/CLP.log'));
    const seen: string[] = [];
    const log = fleetLog(root, (l) => seen.push(l));
    log.log('polled');
    await log.flush();
    expect(seen).toEqual(['polled']);
    expect(await readFile(outside, 'utf8')).toBe('not a log\n');
  });
});
