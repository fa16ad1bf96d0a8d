#!/usr/bin/env bash
# Installs what is missing, builds everything (CUDA, NCCL, MPI and LibTorch on
# when present: CUDA code compiles and links even without a GPU, and its tests
# skip), and runs every test under CTest. Exit status: CTest's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools/setup_deps.sh
tools/build.sh build/test -DVITSCALE_BUILD_TESTS=ON
cd build/test
ctest --output-on-failure -j "${VITSCALE_TEST_JOBS:-2}" "$@"
