#!/usr/bin/env bash
# Configures and builds vitscale.
# Usage: tools/build.sh <build-dir> [extra cmake args...] [-- targets...]
# Uses Ninja when present; CUDA, NCCL, MPI and LibTorch are AUTO unless given.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:?usage: tools/build.sh <build-dir> [cmake args] [-- targets]}
shift
cmake_args=()
targets=()
while [[ $# -gt 0 ]]; do
  if [[ "$1" == "--" ]]; then shift; targets=("$@"); break; fi
  cmake_args+=("$1"); shift
done
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
# An existing build dir keeps its generator.
[[ -f "$build/CMakeCache.txt" ]] && gen=()
mkdir -p "$(dirname "$build")"
cmake -S "$root" -B "$build" "${gen[@]}" "${cmake_args[@]}" >"$build.configure.log" 2>&1 || {
  cat "$build.configure.log" >&2
  echo "build: configure failed (log: $build.configure.log)" >&2
  exit 1
}
grep "vitscale:" "$build.configure.log" || true
jobs=${VITSCALE_BUILD_JOBS:-$(nproc)}
if [[ ${#targets[@]} -gt 0 ]]; then
  cmake --build "$build" -j "$jobs" --target "${targets[@]}"
else
  cmake --build "$build" -j "$jobs"
fi
