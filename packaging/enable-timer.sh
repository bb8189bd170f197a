#!/bin/sh
# Enables the daily update timer after the first installation. On a running systemd it is started
# too; in a container, a chroot or an image being built (no systemd running) it is only enabled,
# which takes effect when that system boots. Never fails the package transaction.
command -v systemctl >/dev/null 2>&1 || exit 0
if [ -d /run/systemd/system ]; then
  systemctl enable --now core-livepatch-update.timer || true
else
  systemctl --root=/ enable core-livepatch-update.timer >/dev/null 2>&1 || true
fi
exit 0
