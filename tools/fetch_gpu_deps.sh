#!/usr/bin/env bash
# fetch_gpu_deps.sh — run on the (networked) dev machine before a GPU check:
# downloads the Debian packages the build needs but the air-gapped GPU node
# lacks (Catch2, nlohmann-json, CLI11, OpenBLAS + libgfortran, zlib headers)
# into .deps/ (git-ignored). gpu_check.sh unpacks them on the node (dpkg -x
# into .deps/root) and points CMake there; the device tool carries `.deps`.
# Only the .deb files are kept here (~14 MB): unpacked, OpenBLAS's static
# archive alone would push the carried tree past the tool's 64 MiB limit.
# Usage: tools/fetch_gpu_deps.sh [DEST]   (DEST defaults to .deps; the dry-run test
# of gpu_check.sh fetches into its build tree when a clean clone has no .deps).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEPS=${1:-"$ROOT/.deps"}
PACKAGES=(catch2 nlohmann-json3-dev libcli11-dev libopenblas-dev libopenblas0-pthread libopenblas-pthread-dev
          libopenblas0 libgfortran5 zlib1g-dev)
mkdir -p "$DEPS"
DEPS=$(cd "$DEPS" && pwd)
cd "$DEPS"
rm -f ./*.deb
if ! apt-get download "${PACKAGES[@]}"; then
  echo "fetch_gpu_deps: apt-get download failed; try 'apt-get update' first" >&2
  exit 1
fi
rm -rf root  # an old layout unpacked here; gpu_check.sh now unpacks into its build folder
du -sh "$DEPS" | sed 's/^/fetch_gpu_deps: /'
ls ./*.deb
