import { lstat, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClpError, FormatError, parsePatchName } from '@clp/format';

/** PKGINFO.meta for a new patch: its metadata filled in, every action shown in a comment. */
export function pkginfoTemplate(name: string, date: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<!--
  ${name}: what the patch is, and what it does. docs/patch-format.md of Core LivePatch describes
  every element and attribute. Build the patch with 'clpctl create ${name}': it fills in every
  sha256, and with its expect-from option (a reference root) the expect-sha256 of what a replace
  or remove changes.
-->
<Package>
  <Name>${name}</Name>
  <Version>1</Version>
  <!-- x86_64, aarch64 or any -->
  <Architecture>any</Architecture>
  <Description>What this patch fixes, in one line</Description>
  <Created>${date}</Created>
  <!-- low, medium, high or critical -->
  <Severity>low</Severity>
  <!-- Only on these systems (os-release ID and VERSION_ID); without Systems, on every system:
  <Systems>
    <System os="vincent" min-version="2025.01" max-version="2026.12"/>
  </Systems>
  -->
  <Actions>
    <!-- Files: put the new content under payload/. add fails if the path exists; replace and
         remove fail unless the file is the one expect-sha256 names (left out: any content).
    <File action="add" path="/etc/example.conf" source="payload/example.conf" mode="0644" owner="root" group="root"/>
    <File action="replace" path="/etc/motd" source="payload/motd" mode="0644" owner="root" group="root"/>
    <File action="remove" path="/etc/obsolete.conf"/>
    -->
    <!-- A package at a version, through pacman or dpkg, from the patch, the cache or a URL:
    <Package action="set-version" name="nvidia-utils" version="550.78-1" source="payload/nvidia-utils-550.78-1-x86_64.pkg.tar.zst"/>
    -->
    <!-- A systemd unit reloaded or restarted once the files are in place:
    <Service action="reload" unit="sshd.service"/>
    -->
    <!-- A script of the patch, before (pre) or after (post) the other actions; its changes are not undone:
    <Script when="post" path="scripts/post.sh" timeout="60s"/>
    -->
    <!-- A health check: if it does not pass within the window, the patch is rolled back:
    <Check command="sshd -t" within="60s"/>
    <Check unit="sshd.service" within="30s"/>
    -->
  </Actions>
</Package>
`;
}

/** Makes a patch folder DIR with a commented PKGINFO.meta and an empty payload/; never overwrites. */
export async function scaffoldPatch(name: string, dir: string): Promise<{ dir: string; files: string[] }> {
  let date: string;
  try {
    date = parsePatchName(name).date;
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    throw new ClpError('CLP_E_USAGE', `new ${name}: ${error.message}`, { details: { name } });
  }
  if (await lstat(dir).catch(() => null)) {
    throw new ClpError('CLP_E_USAGE', `${dir} exists already; new never overwrites: give another --dir`, {
      details: { dir },
    });
  }
  await mkdir(join(dir, 'payload'), { recursive: true });
  await writeFile(join(dir, 'PKGINFO.meta'), pkginfoTemplate(name, date), { flag: 'wx' });
  return { dir, files: ['PKGINFO.meta', 'payload/'] };
}
