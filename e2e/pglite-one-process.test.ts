import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingBuild } from './support/paths.ts';
import { startServerProcess } from './support/server-process.ts';

const missing = missingBuild();
if (missing) console.warn(`skipped: needs ${missing}`);

describe.skipIf(missing !== undefined)('the embedded PGlite database', () => {
  it('lets one server process use a data folder: a second refuses to start and says why, and the folder is free again once the first is killed', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'clp-e2e-onedir-'));
    try {
      const first = await startServerProcess({ databaseUrl: '', dataDir });
      const second = await startServerProcess({ databaseUrl: '', dataDir }).then(
        () => 'started',
        (error: Error) => error.message,
      );
      expect(second).toContain('exited with code 1');
      expect(second).toContain(`another server process (pid ${first.pid}`);
      expect(second).toContain('run several servers on PostgreSQL (DATABASE_URL)');
      expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
      // A crash frees the folder: the lock belongs to the process, not to a file left behind.
      process.kill(first.pid, 'SIGKILL');
      await first.exited;
      const third = await startServerProcess({ databaseUrl: '', dataDir });
      expect((await fetch(`${third.url}/readyz`)).status).toBe(200);
      await third.stop();
      await first.stop();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
