import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeAll, tempDir } from './fleet-harness.ts';

const PACKAGING = resolve(import.meta.dirname, '../../../packaging');
const UNITS = [
  'core-livepatch-update.service',
  'core-livepatch-update.timer',
  'core-livepatch-server.service',
];

function has(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`]).status === 0;
}

const noAnalyze = !has('systemd-analyze');
if (noAnalyze) console.warn('skipped: needs systemd-analyze');

/** INI sections of a unit file or pacman hook: section → key → values (keys may repeat). */
function parseIni(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[([A-Za-z]+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const pair = /^([A-Za-z]+)\s*=\s*(.*)$/.exec(line);
    if (!pair || !current)
      throw new Error(`line ${index + 1} is neither a [Section] nor KEY = VALUE: ${raw}`);
    current.set(pair[1]!, [...(current.get(pair[1]!) ?? []), pair[2]!]);
  }
  return sections;
}

describe('packaging', () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir('clp-packaging-');
  });
  afterAll(async () => {
    await removeAll(work);
  });

  it.skipIf(noAnalyze)(
    'systemd-analyze verify accepts the units (binaries replaced by shims that exist)',
    async () => {
      const dir = join(work, 'units');
      await mkdir(dir, { recursive: true });
      const shim = join(work, 'shim');
      await writeFile(shim, '#!/bin/sh\nexit 0\n');
      await chmod(shim, 0o755);
      for (const unit of UNITS) {
        const text = await readFile(join(PACKAGING, unit), 'utf8');
        // verify requires ExecStart's program to exist on this machine; the rest stays as shipped.
        await writeFile(join(dir, unit), text.replace(/^ExecStart=\S+/m, `ExecStart=${shim}`));
      }
      const result = spawnSync('systemd-analyze', ['verify', '--man=no', ...UNITS.map((u) => join(dir, u))], {
        encoding: 'utf8',
        env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice' },
      });
      const complaints = `${result.stdout}${result.stderr}`
        .split('\n')
        .filter((l) => l.trim() !== '')
        // Messages about units of this machine that the temporary ones do not name.
        .filter((l) => UNITS.some((u) => l.includes(u)));
      expect(complaints, complaints.join('\n')).toEqual([]);
      expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
    },
  );

  it('the timer runs daily at 12:00, catches up after downtime, and spreads the fleet', async () => {
    const timer = parseIni(await readFile(join(PACKAGING, 'core-livepatch-update.timer'), 'utf8'));
    expect(timer.get('Timer')?.get('OnCalendar')).toEqual(['*-*-* 12:00:00']);
    expect(timer.get('Timer')?.get('Persistent')).toEqual(['true']);
    expect(timer.get('Timer')?.get('RandomizedDelaySec')?.[0]).toMatch(/^\d+(s|min|h)?$/);
    expect(timer.get('Install')?.get('WantedBy')).toEqual(['timers.target']);
    const service = parseIni(await readFile(join(PACKAGING, 'core-livepatch-update.service'), 'utf8'));
    expect(service.get('Service')?.get('Type')).toEqual(['oneshot']);
    expect(service.get('Service')?.get('ExecStart')).toEqual(['/usr/bin/clpctl update']);
  });

  it.skipIf(noAnalyze)('systemd-analyze calendar agrees that the timer fires at noon', () => {
    const out = execFileSync('systemd-analyze', ['calendar', '*-*-* 12:00:00'], { encoding: 'utf8' });
    expect(out).toMatch(/Normalized form: \*-\*-\* 12:00:00/);
    expect(out).toMatch(/Next elapse: .* 12:00:00/);
  });

  it('the pacman hook is a valid alpm hook that enables the timer after the package is installed', async () => {
    const hook = parseIni(await readFile(join(PACKAGING, 'core-livepatch.hook'), 'utf8'));
    expect([...hook.keys()].sort()).toEqual(['Action', 'Trigger']);
    const trigger = hook.get('Trigger')!;
    const action = hook.get('Action')!;
    // alpm-hooks(5): the keys each section allows, and their values.
    for (const key of trigger.keys()) expect(['Operation', 'Type', 'Target']).toContain(key);
    for (const key of action.keys())
      expect(['Description', 'Depends', 'When', 'Exec', 'AbortOnFail', 'NeedsTargets']).toContain(key);
    for (const op of trigger.get('Operation')!) expect(['Install', 'Upgrade', 'Remove']).toContain(op);
    expect(trigger.get('Operation')).toEqual(['Install']);
    expect(trigger.get('Type')).toEqual(['Package']);
    expect(trigger.get('Target')).toEqual(['core-livepatch-agent']);
    expect(action.get('When')).toEqual(['PostTransaction']);
    const exec = action.get('Exec')!;
    expect(exec).toHaveLength(1);
    expect(exec[0]).toBe('/usr/lib/core-livepatch/enable-timer');
  });

  /** Runs a packaging script with fake systemctl / deb-systemd-helper / deb-systemd-invoke that log their arguments. */
  async function withFakeSystemd(script: string, args: string[], env: Record<string, string> = {}) {
    const bin = join(work, `fake-bin-${Math.random().toString(36).slice(2)}`);
    await mkdir(bin, { recursive: true });
    const log = join(bin, 'calls.log');
    for (const tool of ['systemctl', 'deb-systemd-helper', 'deb-systemd-invoke']) {
      await writeFile(join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> ${log}\n`);
      await chmod(join(bin, tool), 0o755);
    }
    const result = spawnSync('sh', [join(PACKAGING, script), ...args], {
      encoding: 'utf8',
      env: { PATH: `${bin}:/usr/bin:/bin`, ...env },
    });
    const calls = existsSync(log) ? (await readFile(log, 'utf8')).trim().split('\n') : [];
    return { status: result.status, calls };
  }

  const systemdRunning = existsSync('/run/systemd/system');

  it.skipIf(systemdRunning)(
    'without a running systemd (a container, a chroot) the hook and postinst only enable the timer, offline',
    async () => {
      const hook = await withFakeSystemd('enable-timer.sh', []);
      expect(hook.status).toBe(0);
      expect(hook.calls).toEqual(['systemctl --root=/ enable core-livepatch-update.timer']);
      const first = await withFakeSystemd('debian/agent/postinst', ['configure', '']);
      expect(first.status).toBe(0);
      expect(first.calls).toEqual(['deb-systemd-helper enable core-livepatch-update.timer']);
      // An upgrade keeps what the administrator chose (a disabled timer stays disabled).
      const upgrade = await withFakeSystemd('debian/agent/postinst', ['configure', '0.0.9']);
      expect(upgrade.calls).toEqual([]);
      // An install into another root enables the timer there and starts nothing.
      const other = await withFakeSystemd('debian/agent/postinst', ['configure', ''], {
        DPKG_ROOT: join(work, 'nowhere'),
      });
      expect(other.calls).toEqual([
        `systemctl --root=${join(work, 'nowhere')} enable core-livepatch-update.timer`,
      ]);
      const prerm = await withFakeSystemd('debian/agent/prerm', ['remove']);
      expect(prerm.calls).toEqual([]);
      const purge = await withFakeSystemd('debian/agent/postrm', ['purge']);
      expect(purge.calls).toEqual(['deb-systemd-helper purge core-livepatch-update.timer']);
      const hookWithout = spawnSync('/bin/sh', [join(PACKAGING, 'enable-timer.sh')], {
        env: { PATH: '/nonexistent' },
      });
      expect(hookWithout.status).toBe(0);
    },
  );
  if (systemdRunning)
    console.warn('skipped: the no-systemd script test needs a machine where systemd is not running');

  it('the PKGBUILDs parse and declare the agent and server packages (built and installed in packages.test.ts)', () => {
    for (const [pkgbuild, name, backup] of [
      ['PKGBUILD', 'core-livepatch-agent', 'etc/clp/agent.json'],
      ['server/PKGBUILD', 'core-livepatch-server', 'etc/clp/server.env'],
    ] as const) {
      const file = join(PACKAGING, pkgbuild);
      expect(spawnSync('bash', ['-n', file], { encoding: 'utf8' }).status).toBe(0);
      const vars = execFileSync(
        'bash',
        [
          '-c',
          `set -eu; CARCH=x86_64; startdir=${JSON.stringify(join(file, '..'))}; source ${JSON.stringify(file)}; printf '%s\\n' "$pkgname" "$pkgver" "\${arch[*]}" "\${depends[*]}" "\${backup[*]}" "\${options[*]}"; declare -F build package`,
        ],
        { encoding: 'utf8' },
      ).split('\n');
      expect(vars[0]).toBe(name);
      expect(vars[1]).toMatch(/^\d+\.\d+\.\d+$/);
      expect(vars[2]).toBe('x86_64 aarch64');
      // Node.js is inside the package: no nodejs dependency.
      expect(vars[3]).not.toContain('nodejs');
      expect(vars[4]).toBe(backup);
      // strip would remove the program from the executable.
      expect(vars[5]).toContain('!strip');
      expect(vars.slice(6).filter(Boolean)).toEqual(['build', 'package']);
    }
  });
});
