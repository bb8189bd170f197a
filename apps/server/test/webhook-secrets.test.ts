import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { webhookDeliveries } from '@clp/db';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { configFromEnv } from '../src/index.ts';
import { type Running, start } from './harness.ts';

/**
 * A webhook URL is a credential (chat services put their key in its path or query): the server's
 * log names the receiver by its origin only, whatever goes wrong with a delivery.
 */
const SECRET = 'f3a9c2d17be04e6a8c5d2b91e07f4a6c3d8e1b2a9f0c7d6e5b4a3928171605f4';
const lines: string[] = [];
let s: Running;
let refusing: ReturnType<typeof createHttpServer>;
let port = 0;

beforeAll(async () => {
  refusing = createHttpServer((_req, res) => {
    res.statusCode = 500;
    res.end();
  });
  await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
  port = (refusing.address() as AddressInfo).port;
  s = await start({
    config: {
      logLevel: 'warn',
      webhooks: {
        urls: [`http://127.0.0.1:${port}/services/T0/B0/PATHSECRET?key=QUERYSECRET`],
        secret: SECRET,
      },
      webhookIntervalMs: 3_600_000,
    },
    logStream: { write: (line: string) => lines.push(line) },
  });
});
afterAll(async () => {
  await s?.close();
  await new Promise<void>((r) => refusing?.close(() => r()));
});

it('logs a failed webhook delivery with the receiver origin, not the secret path or query', async () => {
  const now = new Date();
  await s.server.context.db.insert(webhookDeliveries).values({
    event: 'rollout.completed',
    rolloutId: '00000000-0000-4000-8000-000000000001',
    url: `http://127.0.0.1:${port}/services/T0/B0/PATHSECRET?key=QUERYSECRET`,
    payload: { event: 'rollout.completed' },
    nextAt: now,
    createdAt: now,
  });
  expect(await s.server.context.webhooks.deliverDue()).toBe(0);
  const failed = lines.filter((l) => l.includes('webhook delivery'));
  expect(failed.length).toBeGreaterThan(0);
  for (const line of failed) {
    expect(line).toContain(`http://127.0.0.1:${port}`);
    expect(line).not.toMatch(/PATHSECRET|QUERYSECRET/);
  }
});

it('refuses at start a webhook URL with a user name or password, without printing the password', () => {
  const env = {
    CLP_WEBHOOK_URLS: 'https://hooker:PASSWORDSECRET@hooks.example.test/in',
    CLP_WEBHOOK_SECRET: SECRET,
  };
  expect(() => configFromEnv(env)).toThrow(
    /CLP_WEBHOOK_URLS: https:\/\/hooks\.example\.test .*user name or password/,
  );
  expect(() => configFromEnv(env)).not.toThrow(/PASSWORDSECRET/);
});
