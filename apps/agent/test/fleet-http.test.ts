import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { HttpConfig } from '../src/fleet/config.ts';
import { AgentHttpClient } from '../src/fleet/http-client.ts';
import { retryDelay } from '../src/fleet/retry-delay.ts';
import { deadUrl, FAST_HTTP } from './fleet-harness.ts';

/** A fake endpoint that answers request N with script[N] (the last entry repeats). */
async function scripted(script: Array<{ status: number; retryAfter?: number; body?: unknown }>) {
  const times: number[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    const step = script[Math.min(times.length, script.length - 1)]!;
    times.push(Date.now());
    res.statusCode = step.status;
    res.setHeader('content-type', 'application/json');
    if (step.retryAfter !== undefined) res.setHeader('retry-after', String(step.retryAfter));
    res.end(
      JSON.stringify(
        step.body ??
          (step.status < 400 ? { ok: true } : { error: { code: 'X', message: `status ${step.status}` } }),
      ),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  servers.push(server);
  return { url, times };
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

const Ok = z.object({ ok: z.literal(true) });

function client(urls: string[], http: Partial<HttpConfig> = {}, lines: string[] = []) {
  return new AgentHttpClient({
    servers: urls,
    http: HttpConfig.parse({ ...FAST_HTTP, ...http }),
    log: (l) => lines.push(l),
  });
}

describe('agent HTTP: retries, back-off and fallback', () => {
  it('back-off doubles per attempt, stays within its cap, and is jittered', () => {
    const http = { backoffMs: 1000, backoffMaxMs: 10_000 };
    expect(retryDelay(1, http, () => 0)).toBe(500);
    expect(retryDelay(1, http, () => 1)).toBe(1000);
    expect(retryDelay(3, http, () => 0)).toBe(2000);
    expect(retryDelay(3, http, () => 1)).toBe(4000);
    expect(retryDelay(10, http, () => 1)).toBe(10_000);
    const spread = new Set(Array.from({ length: 50 }, () => retryDelay(2, http)));
    expect(spread.size).toBeGreaterThan(10);
    for (const d of spread) expect(d >= 1000 && d <= 2000).toBe(true);
  });

  it('retries 503 and 500 with growing delays and succeeds when the server recovers', async () => {
    const fake = await scripted([{ status: 503 }, { status: 500 }, { status: 200 }]);
    const lines: string[] = [];
    const answer = await client([fake.url], { backoffMs: 80, backoffMaxMs: 1000 }, lines).postJson(
      '/x',
      {},
      Ok,
    );
    expect(answer.value.ok).toBe(true);
    expect(fake.times).toHaveLength(3);
    const first = fake.times[1]! - fake.times[0]!;
    const second = fake.times[2]! - fake.times[1]!;
    // Equal jitter: attempt 1 waits 40..80 ms, attempt 2 waits 80..160 ms.
    expect(first).toBeGreaterThanOrEqual(38);
    expect(second).toBeGreaterThanOrEqual(78);
    expect(lines.filter((l) => l.startsWith('retry '))).toHaveLength(2);
  });

  it('honours Retry-After on 429', async () => {
    const fake = await scripted([{ status: 429, retryAfter: 1 }, { status: 200 }]);
    const answer = await client([fake.url], { backoffMs: 1 }).postJson('/x', {}, Ok);
    expect(answer.value.ok).toBe(true);
    expect(fake.times[1]! - fake.times[0]!).toBeGreaterThanOrEqual(950);
  });

  it('does not retry a 4xx: the server has decided, and the error names its message', async () => {
    const fake = await scripted([
      { status: 403, body: { error: { code: 'CLP_E_FORBIDDEN', message: 'machine revoked' } } },
    ]);
    const error = await client([fake.url])
      .postJson('/x', {}, Ok)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CLP_E_SERVER_REJECTED' });
    expect((error as Error).message).toContain('machine revoked');
    expect(fake.times).toHaveLength(1);
  });

  it('falls back to the next server when the first is down or keeps failing', async () => {
    const down = await deadUrl();
    const failing = await scripted([{ status: 502 }]);
    const good = await scripted([{ status: 200 }]);
    const answer = await client([down, failing.url, good.url], { retries: 1 }).postJson('/x', {}, Ok);
    expect(answer.server).toBe(good.url);
    expect(failing.times).toHaveLength(2);
    expect(good.times).toHaveLength(1);
  });

  it('when no server answers, the error is CLP_E_SERVER_UNREACHABLE listing each one', async () => {
    const down = await deadUrl();
    const failing = await scripted([{ status: 503 }]);
    const error = await client([down, failing.url], { retries: 1 })
      .postJson('/x', {}, Ok)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CLP_E_SERVER_UNREACHABLE' });
    expect((error as Error).message).toContain(down);
    expect((error as Error).message).toContain('HTTP 503');
  });

  it('a slow server hits the time limit and counts as a network failure', async () => {
    const slow: Server = createServer((req) => {
      req.resume();
    });
    servers.push(slow);
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    const started = Date.now();
    const error = await client([url], { timeoutMs: 200, retries: 1 })
      .postJson('/x', {}, Ok)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CLP_E_SERVER_UNREACHABLE' });
    expect((error as Error).message).toMatch(/ETIMEDOUT/);
    expect(Date.now() - started).toBeLessThan(3000);
    slow.closeAllConnections();
  });
});
