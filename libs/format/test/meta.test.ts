import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { comparePatchNames, isClpError, parsePatchName, serializePatchMeta } from '../src/index.ts';
import { readPatchMeta } from '../src/read-patch-meta.ts';

const EXAMPLES = join(import.meta.dirname, '../../../examples');
const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

async function listFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, d.name);
    if (d.isDirectory()) out.push(...(await listFiles(full, base)));
    else out.push(relative(base, full).split('\\').join('/'));
  }
  return out;
}

function codeOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (error) {
    if (!isClpError(error)) throw error;
    return { code: error.code, message: error.message };
  }
  throw new Error('expected a coded error, got none');
}

function xml(
  actions: string,
  head = '<Name>CLP1251123</Name><Version>1</Version><Architecture>x86_64</Architecture>',
): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Package>${head}<Actions>${actions}</Actions></Package>\n`;
}

describe('PKGINFO.meta, XML dialect', () => {
  it('reads the declarative example with its real entries', async () => {
    const dir = join(EXAMPLES, 'CLP1251123');
    const meta = readPatchMeta(await readFile(join(dir, 'PKGINFO.meta'), 'utf8'), await listFiles(dir));
    expect(meta).toMatchObject({
      dialect: 'xml',
      name: 'CLP1251123',
      version: '1',
      architecture: 'any',
      severity: 'low',
      created: '2025-11-23',
      series: 'CLP251123',
    });
    expect(meta.actions).toEqual([
      expect.objectContaining({
        type: 'file',
        action: 'add',
        path: '/etc/clp-demo.conf',
        source: 'payload/clp-demo.conf',
        mode: 0o644,
        owner: 'root',
      }),
      expect.objectContaining({
        type: 'file',
        action: 'replace',
        path: '/etc/motd',
        expectSha256: '466ad33e76f43839ba0960569080384c93237fc3de27f912cf89d18f63f1b1b2',
      }),
    ]);
    expect(meta.installScript).toBeUndefined();
  });

  it('parses every action type with its attributes', () => {
    const text = xml(
      `<File action="replace" path="/etc/ssh/sshd_config" source="payload/sshd_config" expect-sha256="${SHA_A}" sha256="${SHA_B}" mode="0600" owner="root" group="root"/>
       <File action="add" path="/etc/new.conf" source="payload/new.conf" expect-sha256="absent"/>
       <File action="remove" path="/etc/obsolete.conf" expect-sha256="${SHA_A}"/>
       <Package action="set-version" name="nvidia-utils" version="550.78-1" source="payload/nvidia.pkg.tar.zst" sha256="${SHA_B}"/>
       <Package action="set-version" name="openssl" version="3:3.0.11-1" url="https://mirror.example/openssl.deb" sha256="${SHA_A}" size="438"/>
       <Service action="reload" unit="sshd.service"/>
       <Service action="restart" unit="getty@tty1.service"/>
       <Script when="pre" path="scripts/pre.sh" timeout="5m"/>
       <Script when="post" path="scripts/post.sh"/>
       <Check command="sshd -t" within="60s"/>
       <Check unit="sshd.service" within="500ms"/>`,
      `<Name>CLP2251124</Name><Version>2</Version><Architecture>aarch64</Architecture>
       <Series>sshd-hardening</Series><Severity>critical</Severity>
       <Systems><System os="vincent" min-version="1.0" max-version="2.0"/><System os="debian"/></Systems>`,
    );
    const entries = [
      'PKGINFO.meta',
      'payload/sshd_config',
      'payload/new.conf',
      'payload/nvidia.pkg.tar.zst',
      'scripts/pre.sh',
      'scripts/post.sh',
    ];
    const meta = readPatchMeta(text, entries);
    expect(meta.name).toBe('CLP2251124');
    expect(meta.architecture).toBe('aarch64');
    expect(meta.series).toBe('sshd-hardening');
    expect(meta.severity).toBe('critical');
    expect(meta.systems).toEqual([{ os: 'vincent', minVersion: '1.0', maxVersion: '2.0' }, { os: 'debian' }]);
    expect(meta.actions.map((a) => a.type)).toEqual([
      'file',
      'file',
      'file',
      'package',
      'package',
      'service',
      'service',
      'script',
      'script',
      'check',
      'check',
    ]);
    expect(meta.actions[0]).toEqual({
      type: 'file',
      action: 'replace',
      path: '/etc/ssh/sshd_config',
      source: 'payload/sshd_config',
      expectSha256: SHA_A,
      sha256: SHA_B,
      mode: 0o600,
      owner: 'root',
      group: 'root',
    });
    expect(meta.actions[1]).toMatchObject({ action: 'add', expectSha256: 'absent' });
    expect(meta.actions[2]).toMatchObject({ action: 'remove', path: '/etc/obsolete.conf' });
    expect(meta.actions[3]).toMatchObject({
      type: 'package',
      name: 'nvidia-utils',
      version: '550.78-1',
      source: 'payload/nvidia.pkg.tar.zst',
    });
    expect(meta.actions[4]).toMatchObject({
      type: 'package',
      version: '3:3.0.11-1',
      url: 'https://mirror.example/openssl.deb',
      size: 438,
    });
    expect(meta.actions[5]).toEqual({ type: 'service', action: 'reload', unit: 'sshd.service' });
    expect(meta.actions[6]).toEqual({ type: 'service', action: 'restart', unit: 'getty@tty1.service' });
    expect(meta.actions[7]).toEqual({
      type: 'script',
      when: 'pre',
      path: 'scripts/pre.sh',
      timeoutMs: 300_000,
    });
    expect(meta.actions[8]).toEqual({ type: 'script', when: 'post', path: 'scripts/post.sh' });
    expect(meta.actions[9]).toEqual({ type: 'check', command: 'sshd -t', withinMs: 60_000 });
    expect(meta.actions[10]).toEqual({ type: 'check', unit: 'sshd.service', withinMs: 500 });
  });

  it('decodes the built-in entities and character references in text and attributes', () => {
    const meta = readPatchMeta(
      xml(
        '<Check command="test -f /a &amp;&amp; echo &quot;ok&quot; &#62; /dev/null" within="1s"/>',
        '<Name>CLP1251123</Name><Version>1</Version><Architecture>any</Architecture><Description>a &lt;b&gt; &#x263A;</Description>',
      ),
      [],
    );
    expect(meta.description).toBe('a <b> \u263A');
    expect(meta.actions[0]).toMatchObject({ command: 'test -f /a && echo "ok" > /dev/null' });
  });

  it('accepts a byte order mark and ignores elements it does not know', () => {
    const text = `\uFEFF${xml('<Service action="reload" unit="x.service"/>', '<Name>CLP1251123</Name><Version>1</Version><Architecture>any</Architecture><FutureThing a="1">x</FutureThing>')}`;
    expect(readPatchMeta(text, []).actions).toHaveLength(1);
  });

  it('finds the install and remove scripts among the entries', () => {
    const meta = readPatchMeta(xml(''), ['PKGINFO.meta', 'Install-Script.ps1', 'Remove-Script.ps1']);
    expect(meta.installScript).toBe('Install-Script.ps1');
    expect(meta.removeScript).toBe('Remove-Script.ps1');
  });

  it("writes a package action's signed size back as it read it", () => {
    const text = xml(
      `<Package action="set-version" name="openssl" version="3.0.11-1" url="https://mirror.example/openssl.deb" sha256="${SHA_A}" size="438"/>`,
    );
    const meta = readPatchMeta(text, ['PKGINFO.meta']);
    expect(serializePatchMeta(meta)).toContain('size="438"');
    expect(readPatchMeta(serializePatchMeta(meta), ['PKGINFO.meta']).actions).toEqual(meta.actions);
  });

  it.each([
    [
      'an unknown architecture',
      xml(
        '<Service action="reload" unit="a.service"/>',
        '<Name>CLP1251123</Name><Version>1</Version><Architecture>sparc</Architecture>',
      ),
      'Architecture',
    ],
    [
      'a missing version',
      xml(
        '<Service action="reload" unit="a.service"/>',
        '<Name>CLP1251123</Name><Architecture>any</Architecture>',
      ),
      'Version',
    ],
    [
      'a missing name',
      xml(
        '<Service action="reload" unit="a.service"/>',
        '<Version>1</Version><Architecture>any</Architecture>',
      ),
      'Name',
    ],
    ['a relative target path', xml('<File action="remove" path="etc/x"/>'), 'Actions/File[1]/@path'],
    ['a target path with ..', xml('<File action="remove" path="/etc/../root/x"/>'), 'Actions/File[1]/@path'],
    [
      'a source outside the patch',
      xml('<File action="add" path="/etc/x" source="../x"/>'),
      'Actions/File[1]/@source',
    ],
    [
      'a bad sha256',
      xml('<File action="remove" path="/etc/x" expect-sha256="ABC"/>'),
      'Actions/File[1]/@expect-sha256',
    ],
    ['add without a source', xml('<File action="add" path="/etc/x"/>'), 'Actions/File[1]/@source'],
    ['a bad mode', xml('<File action="remove" path="/etc/x" mode="rwx"/>'), 'Actions/File[1]/@mode'],
    ['an unknown action element', xml('<Reboot/>'), 'Actions/Reboot[1]'],
    ['a bad unit name', xml('<Service action="reload" unit="a b"/>'), 'Actions/Service[1]/@unit'],
    ['a check with no window', xml('<Check command="true"/>'), 'Actions/Check[1]/@within'],
    ['a bad duration', xml('<Check command="true" within="soon"/>'), 'Actions/Check[1]/@within'],
    [
      'a package size that is not a number of bytes',
      xml(
        `<Package action="set-version" name="a" version="1" url="https://x.example/a" sha256="${SHA_A}" size="12k"/>`,
      ),
      'Actions/Package[1]/@size',
    ],
    [
      'a repeated element',
      xml(
        '',
        '<Name>CLP1251123</Name><Name>CLP1251124</Name><Version>1</Version><Architecture>any</Architecture>',
      ),
      'Name',
    ],
    ['another root element', '<?xml version="1.0"?><Patch><Name>CLP1251123</Name></Patch>', '<Package>'],
    ['text that is neither XML nor INI', 'Name: CLP1251123\n', 'PKGINFO.meta'],
  ])('refuses %s with CLP_E_PKGINFO_INVALID, naming where', (_what, text, where) => {
    const error = codeOf(() => readPatchMeta(text, ['s.sh']));
    expect(error.code).toBe('CLP_E_PKGINFO_INVALID');
    expect(error.message).toContain('PKGINFO.meta');
    expect(error.message).toContain(where);
  });

  // The action union must not hide which attribute is wrong behind a bare "Invalid input".
  it.each([
    ['an unknown file action', xml('<File action="chmod" path="/etc/x"/>'), 'Actions/File[1]/@action'],
    ['a script with no when', xml('<Script path="s.sh"/>'), 'Actions/Script[1]/@when'],
  ])('refuses %s naming the attribute, not just "Invalid input"', (_what, text, where) => {
    const error = codeOf(() => readPatchMeta(text, ['s.sh']));
    expect(error.code).toBe('CLP_E_PKGINFO_INVALID');
    expect(error.message).toContain(where);
    expect(error.message).not.toMatch(/Invalid input$/);
  });

  it.each([
    [
      'a DOCTYPE',
      '<?xml version="1.0"?><!DOCTYPE Package SYSTEM "http://evil/x.dtd"><Package/>',
      'CLP_E_XML_DTD',
    ],
    [
      'billion laughs (its DTD is refused before any expansion)',
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><Package><Name>&lol2;</Name></Package>',
      'CLP_E_XML_DTD',
    ],
    [
      'an entity declaration without a DOCTYPE',
      '<?xml version="1.0"?><!ENTITY xxe SYSTEM "file:///etc/passwd"><Package/>',
      'CLP_E_XML_ENTITY',
    ],
    [
      'a reference to an undeclared entity',
      xml('', '<Name>&xxe;</Name><Version>1</Version><Architecture>any</Architecture>'),
      'CLP_E_XML_ENTITY',
    ],
    ['a bare ampersand', xml('', '<Name>a & b</Name>'), 'CLP_E_XML_MALFORMED'],
    [
      'an unclosed element',
      '<?xml version="1.0"?><Package><Name>CLP1251123</Package>',
      'CLP_E_XML_MALFORMED',
    ],
    [
      'a bad name',
      xml(
        '<Service action="reload" unit="a.service"/>',
        '<Name>KB1251123</Name><Version>1</Version><Architecture>any</Architecture>',
      ),
      'CLP_E_BAD_NAME',
    ],
    [
      '100,000 nested elements',
      xml(
        '',
        `<Name>CLP1251123</Name><Description>${'<a>'.repeat(100_000)}${'</a>'.repeat(100_000)}</Description>`,
      ),
      'CLP_E_XML_MALFORMED',
    ],
    [
      'an element and an attribute named __proto__',
      xml(
        '<Service action="reload" unit="a.service" __proto__="x"/>',
        '<Name>CLP1251123</Name><__proto__>y</__proto__>',
      ),
      'CLP_E_XML_MALFORMED',
    ],
  ])('refuses %s with its XML or name code', (_what, text, code) => {
    const error = codeOf(() => readPatchMeta(text, []));
    expect(error.code).toBe(code);
  });

  it('refuses a source that is not in the patch with CLP_E_MISSING_SOURCE naming it', () => {
    const error = codeOf(() =>
      readPatchMeta(xml('<File action="add" path="/etc/x" source="payload/gone"/>'), ['PKGINFO.meta']),
    );
    expect(error.code).toBe('CLP_E_MISSING_SOURCE');
    expect(error.message).toContain('payload/gone');
    const script = codeOf(() =>
      readPatchMeta(xml('<Script when="post" path="scripts/post.sh"/>'), ['PKGINFO.meta']),
    );
    expect(script.code).toBe('CLP_E_MISSING_SOURCE');
    expect(script.message).toContain('scripts/post.sh');
  });

  it('refuses a patch with no actions and no install script with CLP_E_EMPTY_PATCH', () => {
    const error = codeOf(() => readPatchMeta(xml(''), ['PKGINFO.meta', 'Remove-Script.ps1']));
    expect(error.code).toBe('CLP_E_EMPTY_PATCH');
    expect(error.message).toContain('CLP1251123');
  });
});

describe('PKGINFO.meta, historic INI dialect', () => {
  it('reads the historic example, finding Install-Patch.ps1 and Remove-Patch.ps1', async () => {
    const dir = join(EXAMPLES, 'CLP1250101-historic');
    const meta = readPatchMeta(await readFile(join(dir, 'PKGINFO.meta'), 'utf8'), await listFiles(dir));
    expect(meta).toMatchObject({
      dialect: 'ini',
      name: 'CLP1250101',
      version: '1',
      architecture: 'any',
      author: 'Core LivePatch release team',
      created: '2025-01-01',
      series: 'CLP250101',
      installScript: 'Install-Patch.ps1',
      removeScript: 'Remove-Patch.ps1',
      actions: [],
    });
  });

  it('takes keys case-insensitively, skips comments and other sections, and reads CRLF lines', () => {
    const text =
      '; made by the old tool\r\n[Meta]\r\nName=ignored\r\n[Package]\r\nname = CLP3250101\r\nVERSION=7\r\narchitecture=x86_64\r\nUnknownKey=1\r\n';
    const meta = readPatchMeta(text, ['Install-Patch.ps1']);
    expect(meta).toMatchObject({ name: 'CLP3250101', version: '7', architecture: 'x86_64', dialect: 'ini' });
  });

  it('prefers Install-Script.ps1 over the historic name when both exist', () => {
    const meta = readPatchMeta('[Package]\nName=CLP1250101\nVersion=1\nArchitecture=any\n', [
      'Install-Patch.ps1',
      'Install-Script.ps1',
    ]);
    expect(meta.installScript).toBe('Install-Script.ps1');
  });

  it.each([
    ['no [Package] section', '[Other]\nName=CLP1250101\n', 'CLP_E_PKGINFO_INVALID', '[Package]'],
    ['a line that is not Key=Value', '[Package]\nName CLP1250101\n', 'CLP_E_PKGINFO_INVALID', 'line 2'],
    ['no name', '[Package]\nVersion=1\nArchitecture=any\n', 'CLP_E_PKGINFO_INVALID', 'Name'],
    ['a repeated key', '[Package]\nName=CLP1250101\nName=CLP1250102\n', 'CLP_E_PKGINFO_INVALID', 'Name'],
    [
      'an unknown architecture',
      '[Package]\nName=CLP1250101\nVersion=1\nArchitecture=mips\n',
      'CLP_E_PKGINFO_INVALID',
      'Architecture',
    ],
    ['a bad name', '[Package]\nName=Patch-1\nVersion=1\nArchitecture=any\n', 'CLP_E_BAD_NAME', 'Patch-1'],
  ])('refuses %s', (_what, text, code, mention) => {
    const error = codeOf(() => readPatchMeta(text, ['Install-Patch.ps1']));
    expect(error.code).toBe(code);
    expect(error.message).toContain(mention);
  });

  it('refuses a historic patch with no install script with CLP_E_EMPTY_PATCH', () => {
    const error = codeOf(() =>
      readPatchMeta('[Package]\nName=CLP1250101\nVersion=1\nArchitecture=any\n', ['Remove-Patch.ps1']),
    );
    expect(error.code).toBe('CLP_E_EMPTY_PATCH');
  });
});

describe('the patch name rule: CLP + revision + YYMMDD', () => {
  it.each([
    ['CLP1251123', 1, '2025-11-23', '251123'],
    ['CLP251123', 1, '2025-11-23', '251123'],
    ['CLP2251123', 2, '2025-11-23', '251123'],
    ['CLP12251123', 12, '2025-11-23', '251123'],
    ['CLP1240229', 1, '2024-02-29', '240229'],
    ['CLP1991231', 1, '2099-12-31', '991231'],
  ])('parses %s', (name, revision, date, dateCode) => {
    expect(parsePatchName(name)).toEqual({ name, revision, date, dateCode });
  });

  it.each([
    'CLP',
    'CLP12345',
    'clp1251123',
    'KB1251123',
    'CLP1251123a',
    ' CLP1251123',
    'CLP1251323', // month 13
    'CLP1251100', // day 0
    'CLP1250230', // 30 February
    'CLP1250229', // 2025 is not a leap year
    'CLP0251123', // revision 0
    'CLP-1251123',
    'CLP99999999999999999251123', // revision beyond a safe integer
  ])('refuses %j with CLP_E_BAD_NAME naming it', (name) => {
    const error = codeOf(() => parsePatchName(name));
    expect(error.code).toBe('CLP_E_BAD_NAME');
    expect(error.message).toContain(JSON.stringify(name).slice(1, -1));
  });

  it('orders a series by date, then by revision', () => {
    const names = ['CLP2251123', 'CLP1251124', 'CLP1251123', 'CLP1241231', 'CLP10251123'];
    expect([...names].sort(comparePatchNames)).toEqual([
      'CLP1241231',
      'CLP1251123',
      'CLP2251123',
      'CLP10251123',
      'CLP1251124',
    ]);
  });
});
