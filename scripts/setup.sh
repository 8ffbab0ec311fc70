#!/usr/bin/env bash
# Installs what gqa needs on a Debian/Ubuntu machine: system packages (apt) and a project-local
# Python venv (.venv) with the official torch wheel (LibTorch) and the test oracle packages.
# Idempotent and quick when everything is already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

apt_packages=(build-essential cmake ninja-build ccache pkg-config python3-venv
  libhdf5-dev libeigen3-dev libboost-program-options-dev libgtest-dev nlohmann-json3-dev
  libsentencepiece-dev libpcre2-dev zlib1g-dev libgloo-dev libopenblas-dev)
# make fuzz / make test: clang with libFuzzer (tests/fuzz); Debian ships its runtime in libclang-rt-dev.
apt_packages+=(clang)
apt-cache show libclang-rt-dev >/dev/null 2>&1 && apt_packages+=(libclang-rt-dev)
# make format / format-check: one formatter version, since versions format differently (.clang-format).
apt_packages+=(clang-format-14)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

req="$root/scripts/requirements.txt"
stamp="$root/.venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$root/.venv/bin/python" ]; then
  echo "setup: creating .venv"
  python3 -m venv "$root/.venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (torch wheel = LibTorch; first time takes a few minutes)"
  "$root/.venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
