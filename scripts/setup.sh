#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages diffbio needs to build, test and benchmark.
# Idempotent: installs nothing when everything is present.
#
#   scripts/setup.sh [extra-package ...]
set -euo pipefail

packages=(
  build-essential
  cmake
  pkg-config
  libeigen3-dev
  catch2
  libbenchmark-dev
  libadolc-dev
  git
  libhts-dev
  libcli11-dev
  nlohmann-json3-dev
)
packages+=("$@")

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: dpkg-query/apt-get not found; this script supports Debian and Ubuntu only." >&2
  echo "setup: install these packages (or their equivalents) yourself: ${packages[*]}" >&2
  exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all packages present"
  exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup: missing packages: ${missing[*]}" >&2
  echo "setup: installing them needs root, and sudo is not available; run this script as root." >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
echo "setup: done"
