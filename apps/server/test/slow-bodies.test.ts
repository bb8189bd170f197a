import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Running, start } from './harness.ts';

/**
 * A JSON body must arrive within `jsonBodyMs`: the enrollment route reads its body before any
 * credential, so a stranger dribbling bytes would otherwise hold a connection for the 30 minutes
 * an upload may take, and many of them the server's sockets.
 */
let s: Running;
beforeAll(async () => {
  s = await start({ config: { jsonBodyMs: 500 } });
});
afterAll(async () => {
  await s?.close();
});

function dribble(path: string): Promise<{ answer: string; ms: number }> {
  const { hostname, port } = new URL(s.url);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let answer = '';
    const timer = setInterval(() => socket.write(' '), 100);
    socket.on('connect', () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"token":`,
      );
    });
    socket.on('data', (d) => {
      answer += d.toString();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ answer, ms: performance.now() - started });
    });
    setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection was still open after 5 s; it got: ${answer || 'nothing'}`));
    }, 5000);
  });
}

it('answers a JSON body that does not arrive in time with 400 and closes the connection', async () => {
  const { answer, ms } = await dribble('/v1/agent/enroll');
  expect(answer).toMatch(/^HTTP\/1\.1 400 /);
  expect(answer).toContain('"code":"CLP_E_VALIDATION"');
  expect(answer).toContain('"field":"body"');
  expect(answer).toMatch(/within 0\.5 s/);
  expect(ms).toBeLessThan(3000);
});

it('still takes a JSON body that arrives in time', async () => {
  const res = await s.call('POST', '/v1/agent/enroll', {
    json: {
      token: 'clp_enr_unknown',
      facts: { hostname: 'h', os: { id: 'x' }, arch: 'x86_64', agentVersion: '1' },
    },
  });
  expect(res.status).toBe(401);
});
