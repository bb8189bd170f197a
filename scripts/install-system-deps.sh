#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real: pacman and dpkg for package reverts,
# bsdtar and zstd to build test packages, systemd-analyze for the unit files, nginx as the
# download peer of the benchmarks, and docker-compose to check the compose file.
set -euo pipefail

needed=()
need() { command -v "$1" >/dev/null 2>&1 || needed+=("$2"); }
need pacman pacman-package-manager
need makepkg makepkg
need bsdtar libarchive-tools
need zstd zstd
need fakeroot fakeroot
need dpkg-deb dpkg
need systemd-analyze systemd
need nginx nginx
need docker-compose docker-compose
need wrk wrk

if [ ${#needed[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system packages missing (${needed[*]}); run as root or install them: apt-get install ${needed[*]}" >&2
  echo "the tests that need them will say 'skipped: needs …'" >&2
  exit 0
fi
echo "installing system packages: ${needed[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
