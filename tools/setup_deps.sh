#!/usr/bin/env bash
# Installs the Debian packages vitscale builds and tests with, when missing.
# Usage: tools/setup_deps.sh [--minimal]   (--minimal: only what vit_train needs)
set -euo pipefail

minimal=0
[[ "${1:-}" == "--minimal" ]] && minimal=1

pkgs=(cmake ninja-build g++ pkg-config catch2 libopenblas-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
      libpng-dev libjpeg62-turbo-dev
      dataset-fashion-mnist)
if [[ $minimal == 0 ]]; then
  # The parity oracle and baseline (LibTorch), MPI ranks, plots for the scaling study.
  pkgs+=(libtorch-dev libopenmpi-dev openmpi-bin python3-torch python3-matplotlib)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
echo "setup_deps: installing ${missing[*]}"
if ! command -v apt-get >/dev/null; then
  echo "setup_deps: error: apt-get not found; install these packages by hand: ${missing[*]}" >&2
  exit 1
fi
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then sudo_cmd=(sudo); else
    echo "setup_deps: error: not root and no sudo; install by hand: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q >/dev/null
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "setup_deps: done"
