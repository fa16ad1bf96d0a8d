#!/usr/bin/env bash
# Re-checks every bit-exact claim of the CPU backend under each GEMM this CPU
# can run: vitscale's own kernels (kernels/cpu/gemm.h: avx512, avx2) and
# OpenBLAS under each of its kernel sets; prints a markdown table
# (docs/training.md, "Determinism"). A by-hand check: CI runs the same tests
# once, with the GEMM the CPU picks itself; forcing VITSCALE_CPU_GEMM or
# OPENBLAS_CORETYPE is for this script only.
#
# Usage: tools/check_determinism.sh [build-dir] [core types...]
#   build-dir   a tools/test.sh build (default build/test) with test_cpu,
#               test_train, vit_train and, for the ranks row, MPI
#   core types  OpenBLAS rows; default: the CPU's own pick, Haswell
#               and Zen (the AMD paths), and, with AVX-512, SkylakeX (the Intel one)
#
# Rows: the GEMM entry points and cross-row reductions at 1-4 threads; a run
# stopped (--stop-at-step and SIGTERM) and resumed, at other thread counts;
# data-parallel ranks against one process (tolerance 1e-5, ranks bitwise equal
# to each other); the main job's loss at step 50 at 1 and 2 threads.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build/test}" && pwd) || exit 2
shift || true
cores=("$@")
if [[ ${#cores[@]} -eq 0 ]]; then
  cores=(default Haswell Zen)
  grep -qw avx512f /proc/cpuinfo && cores+=(SkylakeX)
fi
# Rows: GEMM/core type. vitscale's kernels do not call OpenBLAS for GEMMs.
rows=()
grep -qw avx512f /proc/cpuinfo && rows+=(avx512/default)
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && rows+=(avx2/default)
for core in "${cores[@]}"; do rows+=("openblas/$core"); done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

verdict() { if "$@" >>"$work/log" 2>&1; then echo pass; else echo "**FAIL**"; fi; }

# The main job (vit_train's defaults) stopped at step 50: its loss there.
loss_at_50() {
  local threads=$1 dir="$work/main-$RANDOM"
  mkdir -p "$dir"
  "$build/train/vit_train" --threads "$threads" --stop-at-step 50 --steps-per-print 50 --save-dir "$dir/ckpt" \
    --metrics-out "$dir/m.jsonl" >>"$work/log" 2>&1 || { echo "failed"; return; }
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("event") == "train" and r.get("step") == 50: print(repr(r["loss"]))' "$dir/m.jsonl"
}

echo "CPU: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores; OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0 2>/dev/null)"
echo
echo "| GEMM (OpenBLAS core type) | GEMMs + reductions, 1-4 threads | resume (stop, SIGTERM) across threads | ranks vs one process | main job loss at step 50, 1 thread | 2 threads |"
echo "| --- | --- | --- | --- | --- | --- |"
for row in "${rows[@]}"; do
  export VITSCALE_CPU_GEMM=${row%%/*}
  core=${row#*/}
  if [[ $core == default ]]; then unset OPENBLAS_CORETYPE; else export OPENBLAS_CORETYPE=$core; fi
  picked=$(OPENBLAS_VERBOSE=2 "$build/tests/test_cpu" "[threads]" 2>&1 | sed -n 's/^Core: //p' | head -1)
  kernels=$(verdict "$build/tests/test_cpu" "[contract]")
  resume=$(verdict "$build/tests/test_train" "[resume],[threads]")
  ranks="n/a (no MPI build)"
  if [[ -x "$build/tests/test_parallel_mpi" ]]; then
    ranks=$(verdict ctest --test-dir "$build" -R '^parallel_mpi:np[23]$')
  fi
  l1=$(loss_at_50 1)
  l2=$(loss_at_50 2)
  echo "| $VITSCALE_CPU_GEMM ($core: ${picked:-?}) | $kernels | $resume | $ranks | $l1 | $l2 |"
done
unset OPENBLAS_CORETYPE VITSCALE_CPU_GEMM
if grep -q FAIL "$work/log" 2>/dev/null || grep -q "FAILED" "$work/log"; then
  echo
  echo "failures: see the log below"
  grep -B2 -A12 "FAILED" "$work/log" | head -80
  exit 1
fi
