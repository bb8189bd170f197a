import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManualClock, type StartedServer, startServer } from '@clp/server';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The console in Debian's Chromium against a real server on PGlite with seeded machines: each
 * role signs in, a release is uploaded, a rollout advances and halts when reports fail and is
 * reverted, a machine says why a release is not offered, a token is made and revoked, and a
 * viewer can neither see nor use an operator's buttons, and a user changes their own password. CLP_UPDATE_SCREENSHOTS=1 rewrites the
 * README's screenshots in docs/.
 */
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const NODE = join(REPO, 'node_modules', '.bin', 'node');
const CLPCTL = join(REPO, 'apps', 'agent', 'dist', 'clpctl.mjs');
const BUILT = join(REPO, 'apps', 'console', 'dist', 'index.html');
const PASSWORD = 'correct horse battery staple';
const FACTS = (i: number) => ({
  hostname: `web-${String(i).padStart(2, '0')}`,
  os: { id: 'vincent', version: '2025.11' },
  arch: 'x86_64' as const,
  agentVersion: '0.1.0',
});

function missing(): string | undefined {
  if (!existsSync(CHROMIUM))
    return 'skipped: needs chromium (bash scripts/install-system-deps.sh installs it)';
  if (!existsSync(BUILT) || !existsSync(CLPCTL)) return 'skipped: needs the build (npm run build)';
  return undefined;
}
const why = missing();
if (why) console.warn(why);

function clpctl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(NODE, [CLPCTL, ...args], (error, _out, stderr) =>
      error ? reject(new Error(stderr)) : resolve(),
    ),
  );
}

describe.skipIf(why !== undefined)('the console in Chromium', () => {
  const clock = new ManualClock('2026-04-01T09:00:00Z');
  let work: string;
  let server: StartedServer;
  let admin: string;
  let browser: BrowserContext;
  let page: Page;
  let signed: string;
  let unsigned: string;
  const machines: Array<{ id: string; credential: string }> = [];
  /** The machines that have reported an outcome (fleetRound). */
  const answered = new Set<string>();

  async function api(method: string, path: string, json?: unknown, token = admin) {
    const res = await fetch(server.url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(json ? { 'content-type': 'application/json' } : {}) },
      body: json ? JSON.stringify(json) : undefined,
    });
    const body = (await res.json()) as any;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(body)}`);
    return body;
  }

  /**
   * The README's pictures: taken on every run (a page that cannot be drawn fails the test), written
   * to docs/ only with CLP_UPDATE_SCREENSHOTS=1, so that a test run leaves the worktree clean.
   */
  async function screenshot(name: string): Promise<void> {
    const picture = await page.screenshot({ fullPage: false });
    expect(picture.length).toBeGreaterThan(10_000);
    if (process.env.CLP_UPDATE_SCREENSHOTS !== '1') return;
    await mkdir(join(REPO, 'docs'), { recursive: true });
    await writeFile(join(REPO, 'docs', name), picture);
  }

  async function nav(name: string) {
    await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name }).click();
  }

  async function signIn(username: string): Promise<void> {
    await page.goto(`${server.url}/console/`);
    // A test that failed half-way may have left its session open.
    if (await page.getByRole('button', { name: 'Sign out' }).isVisible()) await signOut();
    await page.getByRole('textbox', { name: 'User name' }).fill(username);
    await page.getByRole('textbox', { name: 'Password' }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('who').getByText(username).waitFor();
  }

  async function signOut() {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  }

  /** Every machine polls once; those offered the release report `status`. */
  async function fleetRound(status: 'applied' | 'failed', only?: number) {
    let reported = 0;
    for (const m of machines) {
      const i = machines.indexOf(m);
      const poll = await api('POST', '/v1/agent/poll', { facts: FACTS(i), installed: [] }, m.credential);
      for (const offer of poll.apply as Array<{
        releaseId: string;
        rolloutId: string;
        name: string;
        sha256: string;
      }>) {
        if (only !== undefined && reported >= only) break;
        await api(
          'POST',
          '/v1/agent/reports',
          {
            reports: [
              {
                id: randomUUID(),
                releaseId: offer.releaseId,
                rolloutId: offer.rolloutId,
                name: offer.name,
                sha256: offer.sha256,
                status,
                ...(status === 'failed'
                  ? {
                      errorCode: 'CLP_E_PRECONDITION',
                      log: `/etc/motd: expected sha256 aaaa…, found bbbb… on ${FACTS(i).hostname}`,
                    }
                  : {}),
                at: clock.now().toISOString(),
              },
            ],
          },
          m.credential,
        );
        reported++;
        answered.add(m.id);
      }
    }
    return reported;
  }

  /** The first machine offered the release that has sent no outcome says it waits for its window. */
  async function reportScheduled(): Promise<boolean> {
    for (const m of machines) {
      if (answered.has(m.id)) continue;
      const i = machines.indexOf(m);
      const poll = await api('POST', '/v1/agent/poll', { facts: FACTS(i), installed: [] }, m.credential);
      const offer = poll.apply[0] as
        | { releaseId: string; rolloutId: string; name: string; sha256: string }
        | undefined;
      if (!offer) continue;
      await api(
        'POST',
        '/v1/agent/reports',
        {
          reports: [
            {
              id: randomUUID(),
              releaseId: offer.releaseId,
              rolloutId: offer.rolloutId,
              name: offer.name,
              sha256: offer.sha256,
              status: 'scheduled',
              scheduledFor: new Date(clock.now().getTime() + 2 * 3600_000).toISOString(),
              at: clock.now().toISOString(),
            },
          ],
        },
        m.credential,
      );
      return true;
    }
    return false;
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'clp-console-'));
    const keys = join(work, 'keys');
    await clpctl(['keygen', '--name', 'console-test', '--out', keys]);
    signed = join(work, 'CLP1251123.clp');
    unsigned = join(work, 'CLP2251123.clp');
    await clpctl([
      'create',
      join(REPO, 'examples/CLP1251123'),
      '-o',
      signed,
      '--sign',
      join(keys, 'console-test.key'),
    ]);
    await clpctl(['create', join(REPO, 'examples/CLP1251123'), '-o', unsigned]);
    await mkdir(join(work, 'data', 'keys'), { recursive: true });
    await clpctl(['keygen', '--name', 'unused', '--out', join(work, 'unused')]);
    const { copyFile } = await import('node:fs/promises');
    await copyFile(join(keys, 'console-test.pub'), join(work, 'data', 'keys', 'console-test.pub'));
    server = await startServer({
      dataDir: join(work, 'data'),
      clock,
      rateLimits: { enrollPerMinute: 10_000, authFailuresPerMinute: 10_000 },
    });
    admin = server.adminToken!;
    for (const [username, role] of [
      ['rita', 'release'],
      ['otto', 'operator'],
      ['vic', 'viewer'],
      ['ada', 'admin'],
    ]) {
      await api('POST', '/v1/users', { username, role, password: PASSWORD });
    }
    const enroll = await api('POST', '/v1/enrollment-tokens', {
      tier: 'stable',
      uses: 40,
      tags: ['site=paris'],
    });
    for (let i = 0; i < 40; i++) {
      const id = `machine-${String(i).padStart(4, '0')}`;
      const res = await api(
        'POST',
        '/v1/agent/enroll',
        { token: enroll.token, facts: FACTS(i), machineId: id },
        '',
      );
      machines.push({ id, credential: res.credential });
      await api('POST', '/v1/agent/poll', { facts: FACTS(i), installed: [] }, res.credential);
    }
    browser = await chromium.launchPersistentContext(join(work, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
      ],
      viewport: { width: 1280, height: 800 },
      acceptDownloads: false,
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.setDefaultTimeout(15_000);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('a release engineer uploads a release, and an unsigned one is refused in words', async () => {
    await signIn('rita');
    await nav('Releases');
    await page.getByTestId('upload-input').setInputFiles(unsigned);
    await expect
      .poll(() => page.getByTestId('upload-error').textContent())
      .toMatch(/not signed.*CLP_E_UNSIGNED/s);
    await page.getByTestId('upload-input').setInputFiles(signed);
    await expect.poll(() => page.getByTestId('upload-done').textContent()).toMatch(/Uploaded CLP1251123/);
    await page.getByRole('link', { name: 'CLP1251123' }).first().click();
    await page.getByRole('heading', { name: /CLP1251123/ }).waitFor();
    expect(await page.getByText('payload/motd').count()).toBeGreaterThan(0);
    expect(await page.getByRole('button', { name: 'Yank' }).isEnabled()).toBe(true);
    await signOut();
  });

  it('an operator creates a rollout from the preview, watches it advance and halt, and reverts it', async () => {
    await signIn('otto');
    await nav('Rollouts');
    await page.getByRole('link', { name: 'New rollout' }).click();
    await page.getByLabel('Release').selectOption({ label: 'CLP1251123 (any)' });
    await page.getByLabel('Tier').selectOption('stable');
    await page.getByLabel('Stages (% of the matching machines)').fill('25,50,100');
    await page.getByLabel('Minimum time per stage (minutes)').fill('1');
    await page.getByLabel('Halt at failure rate (%)').fill('30');
    await page.getByLabel('…after at least this many reports').fill('12');
    await expect.poll(() => page.getByTestId('preview-matching').textContent()).toMatch(/40 of 40 machines/);
    const stages = await page.getByTestId('preview-stage').allTextContents();
    expect(stages).toHaveLength(3);
    expect(stages[2]).toMatch(/Stage 3 \(100 %\): 40 machines/);
    const firstStage = Number(/: (\d+) machines/.exec(stages[0]!)?.[1]);
    await page.getByRole('button', { name: 'Start rollout' }).click();
    await page.getByTestId('offered').getByText('stage 1 of 3').waitFor();
    const rolloutId = page.url().split('/').pop()!;

    // The machines the preview counted are exactly the ones offered the release now.
    expect(await fleetRound('applied')).toBe(firstStage);
    clock.advance(61);
    await page
      .getByTestId('offered')
      .getByText('stage 2 of 3', { exact: false })
      .waitFor({ timeout: 20_000 });
    await fleetRound('applied');
    clock.advance(61);
    await page
      .getByTestId('offered')
      .getByText('stage 3 of 3', { exact: false })
      .waitFor({ timeout: 20_000 });

    // In its last stage the rollout completes only when every targeted machine has answered.
    await page
      .getByTestId('completion')
      .getByText(/It completes once the other \d+ machines? answer/)
      .waitFor({ timeout: 20_000 });
    // A machine that waits for its maintenance window shows, with the window that holds it.
    await api('PUT', '/v1/maintenance-windows', {
      kind: 'tier',
      name: 'stable',
      window: 'Sat 02:00-04:00 Europe/Paris',
    });
    expect(await reportScheduled()).toBe(true);
    await page
      .getByTestId('waiting-for-window')
      .getByText('1 machine waits for its maintenance window')
      .waitFor({ timeout: 20_000 });
    await page
      .getByTestId('maintenance-windows')
      .getByText('Sat 02:00-04:00 Europe/Paris')
      .waitFor({ timeout: 20_000 });

    // The rest of the fleet fails: the rollout halts by itself, and the page says why.
    await fleetRound('failed');
    await page.getByTestId('halt-reason').waitFor({ timeout: 20_000 });
    expect(await page.getByTestId('halt-reason').textContent()).toMatch(
      /failure rate .* reached the threshold of 30.0 %/,
    );
    await page.getByTestId('failed-machines').getByText('CLP_E_PRECONDITION').first().waitFor();
    // Answered and not answered of the targeted machines, as the API counts them; the halt in the audit log.
    const halted = (await api('GET', `/v1/rollouts/${rolloutId}`)).machines;
    expect(halted.targeted).toBe(40);
    expect(halted.notAnswered).toBeGreaterThan(0);
    await expect
      .poll(() => page.getByTestId('rollout-machines').textContent())
      .toContain(
        `${halted.answered} of 40 targeted machines answered, ${halted.notAnswered} not answered yet — applied ${halted.applied}, failed ${halted.failed}`,
      );
    await page.getByTestId('audit').getByText('halt', { exact: true }).waitFor();
    await page.getByTestId('audit').getByText('advance', { exact: true }).first().waitFor();
    await page.getByRole('button', { name: 'Show log' }).first().click();
    await page
      .getByText(/expected sha256 aaaa/)
      .first()
      .waitFor();
    await page.evaluate(() => window.scrollTo(0, 0));
    await screenshot('console-rollout.png');

    await page.getByRole('button', { name: 'Revert' }).click();
    await page.getByLabel('Reason (kept in the audit log)').fill('precondition fails on most of stable');
    await page.getByRole('dialog').getByRole('button', { name: 'Revert' }).click();
    await page.getByText('Rollout is now reverted').waitFor();
    await page.getByTestId('audit').getByText('revert', { exact: true }).waitFor();
    await page
      .getByTestId('audit')
      .getByText(/precondition fails on most of stable/)
      .waitFor();
    const after = await api('GET', `/v1/rollouts/${rolloutId}`);
    expect(after.state).toBe('reverted');
    await api('DELETE', '/v1/maintenance-windows/tier/stable');
    await signOut();
  });

  it('an operator finds a machine and reads why the release is not offered there', async () => {
    await signIn('otto');
    await nav('Machines');
    await page.getByLabel('Search').fill('web-07');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.getByTestId('pager-range').textContent()).toBe('1–1 of 1');
    await page.getByRole('link', { name: 'web-07' }).click();
    await page.getByRole('heading', { name: 'web-07' }).waitFor();
    await page.locator('select[name="why-release"]').selectOption({ label: 'CLP1251123' });
    await expect.poll(() => page.getByTestId('why').textContent()).toMatch(/not-offered: .*reverted/);
    await signOut();
  });

  it('an operator creates an enrollment token, sees its secret once, and revokes it', async () => {
    await signIn('otto');
    await nav('Tokens');
    await page.getByLabel('Tags').fill('site=lyon');
    await page.getByRole('button', { name: 'Create enrollment token' }).click();
    const secret = await page.getByTestId('secret').textContent();
    expect(secret).toMatch(/^clp_enr_/);
    const row = page.getByTestId('enrollment-tokens').getByRole('row', { name: /site=lyon/ });
    await row.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await row.getByText('revoked').waitFor();
    const enroll = await fetch(`${server.url}/v1/agent/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: secret, facts: FACTS(99) }),
    });
    expect(enroll.status).toBe(401);
    await signOut();
  });

  it("a viewer sees no operator button, and the server refuses the viewer's call all the same", async () => {
    await signIn('vic');
    const rollouts = await api('GET', '/v1/rollouts');
    const id = rollouts.rollouts[0].id as string;
    await page.goto(`${server.url}/console/rollouts/${id}`);
    await page.getByTestId('offered').waitFor();
    for (const name of ['Pause', 'Resume', 'Abort', 'Revert', 'Retry failed', 'Approve stage']) {
      expect(await page.getByRole('button', { name }).count()).toBe(0);
    }
    await nav('Releases');
    await page.getByRole('heading', { name: 'Releases' }).waitFor();
    expect(await page.getByTestId('upload-input').count()).toBe(0);
    await nav('Tokens');
    await page.getByRole('heading', { name: 'Enrollment tokens' }).waitFor();
    expect(await page.getByRole('button', { name: 'Create enrollment token' }).count()).toBe(0);
    expect(await page.getByRole('heading', { name: 'API tokens' }).count()).toBe(0);
    // Even with the session's own CSRF token, the server refuses the viewer.
    const refused = await page.evaluate(async (rolloutId) => {
      const me = await (await fetch('/v1/session')).json();
      const res = await fetch(`/v1/rollouts/${rolloutId}/abort`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-clp-csrf': me.csrfToken },
        body: '{}',
      });
      return { status: res.status, body: await res.json() };
    }, id);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('CLP_E_FORBIDDEN');
    await signOut();
  });

  it('an admin signs in with the admin token and sees the overview; deep links survive a reload', async () => {
    await page.goto(`${server.url}/console/`);
    if (await page.getByRole('button', { name: 'Sign out' }).isVisible()) await signOut();
    // Each sign-in choice is one line: its radio button beside its words, not a wide box above them.
    for (const name of ['Name and password', 'API token']) {
      const radio = await page.getByRole('radio', { name }).boundingBox();
      const label = await page.locator('.segmented label', { hasText: name }).boundingBox();
      expect(radio && label && radio.width < 30 && label.height < 2 * radio.height + 10, name).toBe(true);
    }
    await page.getByRole('radio', { name: 'API token' }).check();
    await page.getByLabel('Admin API token').fill(admin);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('who').getByText('admin').waitFor();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    expect(await page.getByTestId('enrolled').textContent()).toBe('40');
    await page.getByRole('heading', { name: 'Recent failures' }).waitFor();
    await page.getByText('CLP_E_PRECONDITION').first().waitFor();
    await page.getByRole('link', { name: 'Users' }).waitFor();
    await screenshot('console-overview.png');
    await page.goto(`${server.url}/console/machines/machine-0003`);
    await page.getByRole('heading', { name: 'web-03' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'web-03' }).waitFor();
    await signOut();
    // Signed out on the server: the page's old session cookie no longer works.
    const status = await page.evaluate(async () => (await fetch('/v1/session')).status);
    expect(status).toBe(401);
  });
  it('a user changes their own password, stays signed in, and signs in with the new one next time', async () => {
    await signIn('ada');
    await page.getByTestId('who').getByRole('link', { name: 'ada' }).click();
    await page.getByRole('heading', { name: 'Password' }).waitFor();
    await page.getByLabel('Current password').fill('not the password at all');
    await page.getByLabel('New password', { exact: true }).fill('a brand new passphrase');
    await page.getByLabel('New password again').fill('a brand new passphrase');
    await page.getByRole('button', { name: 'Change password' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/wrong password/);
    await page.getByLabel('Current password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Change password' }).click();
    await expect.poll(() => page.getByTestId('toast-ok').last().textContent()).toMatch(/Password changed/);
    // Still signed in, with a new session: an unsafe call goes through.
    await nav('Tokens');
    await page.getByRole('heading', { name: 'Enrollment tokens' }).waitFor();
    await signOut();
    await page.getByRole('textbox', { name: 'User name' }).fill('ada');
    await page.getByRole('textbox', { name: 'Password' }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(/wrong password/).waitFor();
    await page.getByRole('textbox', { name: 'Password' }).fill('a brand new passphrase');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('who').getByText('ada').waitFor();
    await signOut();
  });
});
