// The server of the fleet simulation, in a worker thread so that it has a core of its own. Its
// clock reads virtual time (ms since the epoch) from memory shared with the load generator.
import { parentPort, workerData } from 'node:worker_threads';
import { createServer, defaultConfig } from '@clp/server';

const cell = new BigInt64Array(workerData.clock);
const clock = { now: () => new Date(Number(Atomics.load(cell, 0))) };

const config = defaultConfig({
  dataDir: workerData.dataDir,
  databaseUrl: workerData.databaseUrl,
  trustedKeysDir: workerData.keysDir,
  bootstrapToken: workerData.adminToken,
  logLevel: 'warn',
  rateLimits: { enrollPerMinute: 10_000_000, authFailuresPerMinute: 10_000_000 },
});
const server = await createServer(config, { clock });
const { url } = await server.listen(0, '127.0.0.1');
parentPort.postMessage({ type: 'listening', url });
parentPort.on('message', async (message) => {
  if (message.type === 'flush') {
    // Poll bookkeeping is written once a second; make it visible now.
    await server.context.seen.flush();
    parentPort.postMessage({ type: 'flushed' });
  } else if (message.type === 'close') {
    await server.close();
    parentPort.postMessage({ type: 'closed' });
  }
});
