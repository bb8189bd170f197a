import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRelease, cohortBucket, GOOD_MOTD, inStage, Machine, OTHER_MOTD } from './support/agents.ts';
import { missingBuild } from './support/paths.ts';
import { type ServerProcess, startServerProcess } from './support/server-process.ts';

/*
 * The whole product: the server bundle as its own process (PostgreSQL when DATABASE_URL is set),
 * eight machines as separate `clpctl` processes in their own roots, a signed release, a 3-stage
 * rollout. The server takes its time from the system clock and has no way to be driven from
 * outside, so a "day" is one round of `clpctl update` on every machine and stages last
 * STAGE_SECONDS of real time.
 */

const missing = missingBuild();
if (missing) console.warn(`skipped: needs ${missing}`);

const MACHINES = 8;
const STAGE_SECONDS = 25;
const STAGES = [25, 50, 100];
const THRESHOLD = { maxFailureRate: 0.3, minReports: 2 };
const RELEASE = 'CLP1261120';

interface Rollout {
  id: string;
  state: string;
  currentStage: number;
  haltReason: string | null;
  counters: { applied: number; failed: number; reverted: number; revertFailed: number };
}

interface Day {
  applied: Set<Machine>;
  failed: Set<Machine>;
  halted: boolean;
}

/**
 * What the documented rules predict for one day of sequential updates at stage `stage`: a machine
 * in the cohort applies (or fails, if its motd is not the expected one) unless the rollout halted
 * before its turn; the server halts once failed / (applied + failed) reaches the threshold with at
 * least minReports outcomes.
 */
function predictDay(
  order: readonly Machine[],
  bucket: ReadonlyMap<Machine, number>,
  percent: number,
  failing: ReadonlySet<Machine>,
  already: ReadonlySet<Machine>,
  counters: { applied: number; failed: number },
): Day {
  const day: Day = { applied: new Set(), failed: new Set(), halted: false };
  let { applied, failed } = counters;
  const unhealthy = () =>
    applied + failed >= THRESHOLD.minReports && failed / (applied + failed) >= THRESHOLD.maxFailureRate;
  for (const m of order) {
    if (unhealthy()) {
      day.halted = true;
      break;
    }
    if (already.has(m) || !inStage(bucket.get(m)!, percent)) continue;
    if (failing.has(m)) {
      day.failed.add(m);
      failed++;
    } else {
      day.applied.add(m);
      applied++;
    }
  }
  if (unhealthy()) day.halted = true;
  return day;
}

describe.skipIf(missing !== undefined)('a fleet of agents against the real server', () => {
  let server: ServerProcess;
  let release: Awaited<ReturnType<typeof buildRelease>>;
  const machines: Machine[] = [];

  beforeAll(async () => {
    [server, release] = await Promise.all([startServerProcess(), buildRelease(RELEASE)]);
    await writeFile(join(server.keysDir, 'e2e-release.pub'), await readFile(release.pub));
    for (let i = 0; i < MACHINES; i++) machines.push(await Machine.create(`m${i + 1}`, release.pub));
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await Promise.all(machines.map((m) => m.remove()));
    if (release) await rm(release.dir, { recursive: true, force: true });
  }, 60_000);

  it('rolls out stage by stage, halts by itself on failures, reverts, and stores each report once', async () => {
    const token = await server.call('POST', '/v1/enrollment-tokens', {
      json: { tier: 'stable', uses: MACHINES },
    });
    expect(token.status, JSON.stringify(token.body)).toBe(201);
    for (let i = 0; i < machines.length; i += 4) {
      await Promise.all(machines.slice(i, i + 4).map((m) => m.enroll(server.url, token.body.token)));
    }
    expect(new Set(machines.map((m) => m.machineId)).size).toBe(MACHINES);

    const upload = await server.call('POST', '/v1/releases', { body: release.bytes });
    expect(upload.status, JSON.stringify(upload.body)).toBe(201);
    const releaseId: string = upload.body.id;

    // The rollout id is random, so eight machines fall into cohorts at random. Draw rollouts
    // (aborting the unusable ones before any machine polls) until each stage adds a machine and
    // the failures planted in stage 2 are enough to halt it.
    let rollout: Rollout | undefined;
    let bucket = new Map<Machine, number>();
    let failing = new Set<Machine>();
    for (let draw = 0; draw < 60 && !rollout; draw++) {
      const created = await server.call('POST', '/v1/rollouts', {
        json: {
          releaseId,
          tier: 'stable',
          stages: STAGES.map((percent) => ({ percent, minDurationSeconds: STAGE_SECONDS })),
          failureThreshold: THRESHOLD,
        },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const r = created.body as Rollout;
      bucket = new Map(machines.map((m) => [m, cohortBucket(m.machineId, r.id)]));
      const stage1 = machines.filter((m) => inStage(bucket.get(m)!, STAGES[0]!));
      const stage2 = machines.filter(
        (m) => !inStage(bucket.get(m)!, STAGES[0]!) && inStage(bucket.get(m)!, STAGES[1]!),
      );
      const never = machines.filter((m) => !inStage(bucket.get(m)!, STAGES[1]!));
      failing = new Set([...stage2, ...never.filter((_, i) => i % 2 === 0)]);
      const day2 = predictDay(machines, bucket, STAGES[1]!, failing, new Set(stage1), {
        applied: stage1.length,
        failed: 0,
      });
      if (stage1.length > 0 && stage2.length > 0 && never.length > 0 && day2.halted) {
        rollout = r;
        break;
      }
      const aborted = await server.call('POST', `/v1/rollouts/${r.id}/abort`, {
        json: { reason: 'test: cohorts too uneven, drawing another rollout' },
      });
      expect(aborted.status).toBe(200);
    }
    if (!rollout) throw new Error('no usable cohort split in 60 rollouts; the cohort hash looks broken');
    for (const m of failing) await m.setMotd(OTHER_MOTD);

    const show = async (): Promise<Rollout> => {
      const r = await server.call('GET', `/v1/rollouts/${rollout!.id}`);
      expect(r.status).toBe(200);
      return r.body as Rollout;
    };
    const counters = { applied: 0, failed: 0 };
    const installed = new Set<Machine>();
    const everFailed = new Set<Machine>();

    const runDay = async (stage: number): Promise<Day> => {
      const before = await show();
      expect(before.state).toBe('active');
      expect(before.currentStage, 'the stage changed before the day started').toBe(stage);
      const expected = predictDay(
        machines,
        bucket,
        STAGES[stage]!,
        failing,
        new Set([...installed, ...everFailed]),
        counters,
      );
      const started = Date.now();
      const check = async (m: Machine) => {
        const r = await m.update();
        const label = `${m.name} (bucket ${bucket.get(m)}) day at stage ${stage + 1}: exit ${r.code}\n${r.stdout}\n${r.stderr}`;
        if (expected.failed.has(m)) expect(r.code, label).toBe(6);
        else expect(r.code, label).toBe(0);
      };
      if (expected.failed.size === 0) {
        // No failure can change the rollout today, so the order does not matter: go four at a time.
        for (let i = 0; i < machines.length; i += 4) await Promise.all(machines.slice(i, i + 4).map(check));
      } else {
        // Failures may halt the rollout between two machines: one at a time, in the predicted order.
        for (const m of machines) await check(m);
      }
      console.log(
        `day at stage ${stage + 1}: ${machines.length} updates in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      const after = await show();
      if (!expected.halted)
        expect(after.currentStage, `stage ${stage + 1} ended during the day; raise STAGE_SECONDS`).toBe(
          stage,
        );
      for (const m of expected.applied) installed.add(m);
      for (const m of expected.failed) everFailed.add(m);
      counters.applied += expected.applied.size;
      counters.failed += expected.failed.size;
      await expectRoots();
      return expected;
    };

    const expectRoots = async () => {
      for (const m of machines) {
        const has = installed.has(m);
        expect(await m.read('/etc/clp-e2e.conf'), `${m.name} /etc/clp-e2e.conf`).toBe(
          has ? release.conf : undefined,
        );
        expect(await m.read('/etc/motd'), `${m.name} /etc/motd`).toBe(
          has ? release.newMotd : failing.has(m) ? OTHER_MOTD : GOOD_MOTD,
        );
        const blob = await m.read('/opt/clp-e2e/blob.bin');
        expect(blob === undefined ? undefined : blob.length > 0, `${m.name} /opt/clp-e2e/blob.bin`).toBe(
          has ? true : undefined,
        );
      }
    };

    // Day 1: only the stage-1 cohort is offered the release, and all of it applies.
    const day1 = await runDay(0);
    expect(day1.applied.size).toBeGreaterThan(0);
    expect(day1.failed.size).toBe(0);
    expect((await show()).counters).toMatchObject({ applied: day1.applied.size, failed: 0 });

    // The stage ends after its minimum time; the server moves on by itself.
    const deadline = Date.now() + (STAGE_SECONDS + 30) * 1000;
    while ((await show()).currentStage === 0) {
      if (Date.now() > deadline) throw new Error('the rollout never left stage 1');
      await new Promise((r) => setTimeout(r, 1000));
    }

    // Day 2: stage 2 adds machines whose motd differs: they fail and the rollout halts itself.
    const day2 = await runDay(1);
    expect(day2.failed.size).toBeGreaterThan(0);
    const halted = await show();
    expect(halted.state).toBe('halted');
    expect(halted.currentStage).toBe(1);
    expect(halted.haltReason).toMatch(/failure rate/);
    expect(halted.counters).toMatchObject({ applied: counters.applied, failed: counters.failed });
    const audit = await server.call('GET', `/v1/rollouts/${rollout.id}/audit`);
    expect(audit.body.entries).toContainEqual(expect.objectContaining({ actor: 'system', action: 'halt' }));

    // Day 3: halted means nobody new gets it, however long we wait. Every machine polls, so the
    // server now knows who has the release.
    for (const m of machines) expect((await m.update()).code, m.name).toBe(0);
    await expectRoots();
    await new Promise((r) => setTimeout(r, 2500)); // the server records polls once a second
    const listed = await server.call('GET', '/v1/machines?limit=1000');
    expect(listed.status).toBe(200);
    // Each machine record says in which state it has the release: applied or failed.
    const stateOn = (state: string) =>
      new Set(
        (listed.body.machines as Array<{ id: string; installed: Array<{ sha256: string; state: string }> }>)
          .filter((x) => x.installed.some((p) => p.sha256 === releaseId && p.state === state))
          .map((x) => x.id),
      );
    expect(stateOn('installed')).toEqual(new Set([...installed].map((m) => m.machineId)));
    expect(stateOn('failed')).toEqual(new Set([...everFailed].map((m) => m.machineId)));
    // The installed= filter lists exactly the machines where it applied.
    const withRelease = await server.call('GET', `/v1/machines?installed=${releaseId}&limit=1000`);
    expect(new Set((withRelease.body.machines as Array<{ id: string }>).map((x) => x.id))).toEqual(
      new Set([...installed].map((m) => m.machineId)),
    );

    // Revert: the machines that have the release take it back at their next update.
    const reverted = await server.call('POST', `/v1/rollouts/${rollout.id}/revert`, {
      json: { reason: 'e2e' },
    });
    expect(reverted.status, JSON.stringify(reverted.body)).toBe(200);
    expect(reverted.body.state).toBe('reverted');
    const applied = new Set(installed);
    for (const m of machines) expect((await m.update()).code, m.name).toBe(0);
    installed.clear();
    await expectRoots();
    for (const m of applied) expect(await m.read('/opt/clp-e2e/blob.bin'), m.name).toBeUndefined();

    // Every outcome reached the server exactly once.
    const list = await server.call('GET', `/v1/reports?rollout=${rollout.id}&limit=1000`);
    expect(list.status).toBe(200);
    const reports = list.body.reports as Array<{ id: string; machineId: string; status: string }>;
    expect(new Set(reports.map((r) => r.id)).size).toBe(reports.length);
    for (const m of machines) {
      const outcomes = reports
        .filter((r) => r.machineId === m.machineId && r.status !== 'downloading')
        .map((r) => r.status)
        .sort();
      const want = applied.has(m) ? ['applied', 'reverted'] : everFailed.has(m) ? ['failed'] : [];
      expect(outcomes, `${m.name} reports`).toEqual(want);
    }
    expect((await show()).counters).toEqual({
      applied: applied.size,
      failed: everFailed.size,
      reverted: applied.size,
      revertFailed: 0,
      silent: 0,
    });
  }, 240_000);
});
