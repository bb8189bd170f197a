#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real: pacman and dpkg for package reverts,
# bsdtar and zstd to build test packages, systemd-analyze for the unit files, nginx as the
# download peer of the benchmarks, and docker-compose to check the compose file. npm run package
# needs makepkg, fakeroot, dpkg-deb, strip (binutils) and lintian; its tests install the packages
# with pacman and dpkg and check the completions with zsh and fish and the man pages with groff;
# hyperfine times clpctl's start-up in bench/, openssl makes the TLS tests' certificates, and
# Chromium drives the console's browser suite.
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
need lintian lintian
need strip binutils
need groff groff-base
need zsh zsh
need fish fish
need hyperfine hyperfine
need openssl openssl
need chromium chromium

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
