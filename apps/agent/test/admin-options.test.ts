import { describe, expect, it } from 'vitest';
import type { AdminClient } from '../src/admin/admin-client.ts';
import { errorFromAnswer } from '../src/admin/admin-client.ts';
import { parseDuration, parseList } from '../src/admin/duration.ts';
import { resolveRelease } from '../src/admin/resolve-release.ts';
import { rolloutBody } from '../src/admin/rollout-commands.ts';
import { table } from '../src/admin/table.ts';

const base = { tier: 'edge', stages: '1,10,50,100', stageMinMinutes: '60', tag: [], arch: [], os: [] };
const release = 'a'.repeat(64);

describe('admin option parsing', () => {
  it('reads durations in seconds, minutes, hours, days and weeks', () => {
    expect(parseDuration('90', '--expires')).toBe(90);
    expect(parseDuration('30m', '--expires')).toBe(1800);
    expect(parseDuration('12h', '--expires')).toBe(43_200);
    expect(parseDuration('7d', '--expires')).toBe(604_800);
    expect(parseDuration('2w', '--expires')).toBe(1_209_600);
    expect(() => parseDuration('7 days', '--expires')).toThrow(
      expect.objectContaining({ code: 'CLP_E_ADMIN_BAD_OPTION' }),
    );
  });

  it('joins repeated and comma-separated list options', () => {
    expect(parseList(['a,b', ' c ', ''])).toEqual(['a', 'b', 'c']);
    expect(parseList(undefined)).toEqual([]);
  });

  it('builds a rollout body with every stage lasting the minimum time', () => {
    const body = rolloutBody(release, {
      ...base,
      stages: '5,50,100',
      stageMinMinutes: '15',
      tag: ['site=paris'],
      arch: ['x86_64,aarch64'],
    });
    expect(body).toEqual({
      releaseId: release,
      tier: 'edge',
      stages: [
        { percent: 5, minDurationSeconds: 900 },
        { percent: 50, minDurationSeconds: 900 },
        { percent: 100, minDurationSeconds: 900 },
      ],
      selector: { tags: ['site=paris'], arch: ['x86_64', 'aarch64'] },
    });
  });

  it('fills the other half of the failure threshold with the server default', () => {
    expect(rolloutBody(release, { ...base, minReports: '20' }).failureThreshold).toEqual({
      maxFailureRate: 0.05,
      minReports: 20,
    });
    expect(rolloutBody(release, { ...base, failureThreshold: '0.1' }).failureThreshold).toEqual({
      maxFailureRate: 0.1,
      minReports: 10,
    });
    expect(rolloutBody(release, base).failureThreshold).toBeUndefined();
  });

  it('reads stage gates, a failure count, the silence timeout and the completion window', () => {
    const body = rolloutBody(release, {
      ...base,
      minApplied: '50%,20,-,-',
      approval: '2',
      maxFailures: '3',
      silenceTimeout: '36h',
      completionWindow: '5d',
    });
    expect(body.stages).toEqual([
      { percent: 1, minDurationSeconds: 3600, minAppliedPercent: 50 },
      { percent: 10, minDurationSeconds: 3600, minAppliedCount: 20, requireApproval: true },
      { percent: 50, minDurationSeconds: 3600 },
      { percent: 100, minDurationSeconds: 3600 },
    ]);
    expect(body).toMatchObject({
      silenceTimeoutSeconds: 129_600,
      completionWindowSeconds: 432_000,
      failureThreshold: { maxFailures: 3, maxFailureRate: 0.05, minReports: 10 },
    });
    expect(() => rolloutBody(release, { ...base, approval: '4' })).toThrow(/stage 4 is the last/);
    expect(() => rolloutBody(release, { ...base, minApplied: '1,2' })).toThrow(/one per stage \(4\)/);
  });

  it('refuses decreasing stages and rates outside 0-1', () => {
    expect(() => rolloutBody(release, { ...base, stages: '50,10' })).toThrow(/must not decrease/);
    expect(() => rolloutBody(release, { ...base, stages: '0,10' })).toThrow(/--stages 0/);
    expect(() => rolloutBody(release, { ...base, failureThreshold: '1.5' })).toThrow(
      /--failure-threshold 1.5/,
    );
  });
});

describe('admin server answers', () => {
  it('keeps the code and message of a 4xx', () => {
    const e = errorFromAnswer(
      409,
      JSON.stringify({ error: { code: 'CLP_E_ROLLOUT_STATE', message: 'already paused' } }),
      'u',
    );
    expect(e.code).toBe('CLP_E_ROLLOUT_STATE');
    expect(e.message).toBe('already paused');
  });

  it('passes archive and signature codes through so that they keep their exit codes', () => {
    const e = errorFromAnswer(
      422,
      JSON.stringify({ error: { code: 'CLP_E_PATH_TRAVERSAL', message: 'entry ../x' } }),
      'u',
    );
    expect(e.code).toBe('CLP_E_PATH_TRAVERSAL');
  });

  it('turns a 5xx, an unknown code or a body that is not JSON into CLP_E_ADMIN_SERVER_FAILED', () => {
    expect(
      errorFromAnswer(500, JSON.stringify({ error: { code: 'CLP_E_INTERNAL', message: 'boom' } }), 'u').code,
    ).toBe('CLP_E_ADMIN_SERVER_FAILED');
    expect(
      errorFromAnswer(418, JSON.stringify({ error: { code: 'CLP_E_TEAPOT', message: 'x' } }), 'u').message,
    ).toContain('CLP_E_TEAPOT');
    expect(errorFromAnswer(502, '<html>bad gateway</html>', 'http://s/v1/x').message).toContain(
      'HTTP 502 from http://s/v1/x',
    );
  });
});

describe('admin tables', () => {
  it('pads every column but the last, and says (none) for no rows', () => {
    expect(
      table(
        ['A', 'BB'],
        [
          ['xyz', 1],
          ['q', null],
        ],
      ),
    ).toBe('A    BB\nxyz  1\nq    -');
    expect(table(['A'], [])).toBe('(none)');
  });
});

describe('naming a release', () => {
  // The server's answers to GET /v1/releases, with ids chosen to share their first digits.
  const releases = [
    { id: `bad1${'0'.repeat(60)}`, name: 'CLP1260101' },
    { id: `bad1${'1'.repeat(60)}`, name: 'CLP1260102' },
    { id: `bad2${'2'.repeat(60)}`, name: 'CLP1260103' },
  ];
  const client = {
    get: async (_path: string, query: { name?: string } = {}) => ({
      releases: query.name ? releases.filter((r) => r.name === query.name) : releases,
    }),
  } as unknown as AdminClient;

  it('takes a short prefix when only one id starts with it, and says how many share one that is not', async () => {
    expect(await resolveRelease(client, 'bad2')).toBe(releases[2]!.id);
    expect(await resolveRelease(client, 'CLP1260102')).toBe(releases[1]!.id);
    await expect(resolveRelease(client, 'bad1')).rejects.toMatchObject({
      code: 'CLP_E_ADMIN_AMBIGUOUS',
      message: expect.stringMatching(
        /^bad1 is the start of 2 release ids \(bad100000000 CLP1260101, bad111111111 CLP1260102\)/,
      ),
    });
    await expect(resolveRelease(client, 'bad3')).rejects.toMatchObject({ code: 'CLP_E_NOT_FOUND' });
    await expect(resolveRelease(client, 'CLP9999999')).rejects.toMatchObject({ code: 'CLP_E_NOT_FOUND' });
  });
});
