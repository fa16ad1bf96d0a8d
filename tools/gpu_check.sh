#!/usr/bin/env bash
# gpu_check.sh <outdir> — the one prepared GPU check (see docs/cuda.md).
#
# On a GPU node with CUDA, PyTorch (LibTorch), CMake and ninja but no network:
#   1. unpacks the Debian packages carried in .deps/ (tools/fetch_gpu_deps.sh),
#   2. configures and builds with CUDA (sm_90 only) and LibTorch from PyTorch,
#   3. runs the CUDA tests (CPU-vs-GPU for every kernel, whole model, graphs),
#      a compute-sanitizer pass over the kernels' tests where available,
#   4. runs vit_bench (kernels and the training step, side by side with LibTorch),
#   5. runs a short real training run (bf16),
# and writes <outdir>/report.md plus raw logs under <outdir>/logs. Every stage
# has its own timeout, so one hang cannot eat the budget (< 8 minutes on an H100).
set -uo pipefail

OUT=${1:?usage: tools/gpu_check.sh <outdir>}
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
LOGS="$OUT/logs"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD="$ROOT/build-gpu"
DEPS="$ROOT/.deps/root"
REPORT="$OUT/report.md"
T_START=$(date +%s)
JOBS=$(nproc 2>/dev/null || echo 8)

STAGES=()
# stage <name> <timeout seconds> <command...>: runs with a timeout, logs to logs/<name>.log.
stage() {
  local name=$1 limit=$2
  shift 2
  local t0 rc
  t0=$(date +%s)
  echo "== $name (timeout ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  local dt=$(($(date +%s) - t0))
  local verdict=ok
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then verdict="TIMEOUT"; elif [ $rc -ne 0 ]; then verdict="FAILED (rc=$rc)"; fi
  STAGES+=("| $name | $verdict | ${dt}s |")
  echo "   $verdict in ${dt}s"
  tail -n 3 "$LOGS/$name.log" | sed 's/^/   | /'
  return $rc
}

# ---- 0. environment --------------------------------------------------------
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
  nvcc --version 2>&1 | tail -2
  cmake --version | head -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1
  uname -a
  (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
} >"$LOGS/env.log" 2>&1

# ---- 1. carried dependencies -----------------------------------------------
if [ ! -d "$DEPS/usr" ] && ls "$ROOT"/.deps/*.deb >/dev/null 2>&1; then
  mkdir -p "$DEPS"
  for f in "$ROOT"/.deps/*.deb; do dpkg -x "$f" "$DEPS"; done
  find "$DEPS" -name '*.a' -delete  # static archives: not linked, only disk
fi
CMAKE_DEP_ARGS=()
LIBDIR="$DEPS/usr/lib/x86_64-linux-gnu"
if [ -d "$DEPS/usr" ]; then
  ZLIB_SO=$(ls /usr/lib/x86_64-linux-gnu/libz.so.1 /lib/x86_64-linux-gnu/libz.so.1 "$LIBDIR/libz.so" 2>/dev/null | head -1)
  CMAKE_DEP_ARGS+=(
    "-DCMAKE_LIBRARY_PATH=$LIBDIR/openblas-pthread;$LIBDIR"
    "-DCMAKE_INCLUDE_PATH=$DEPS/usr/include/x86_64-linux-gnu/openblas-pthread;$DEPS/usr/include"
    "-DCBLAS_INCLUDE_DIR=$DEPS/usr/include/x86_64-linux-gnu/openblas-pthread"
    "-DZLIB_INCLUDE_DIR=$DEPS/usr/include"
    "-DZLIB_LIBRARY=$ZLIB_SO"
    "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$LIBDIR -Wl,-rpath,$LIBDIR/openblas-pthread:$LIBDIR"
  )
  export LD_LIBRARY_PATH="$LIBDIR/openblas-pthread:$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
PREFIX="$DEPS/usr"
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
[ -n "$TORCH_PREFIX" ] && PREFIX="$PREFIX;$TORCH_PREFIX"

# (an array, not a function: `timeout` runs programs only)
CONFIGURE=(cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVITSCALE_WITH_CUDA=ON
  -DVITSCALE_WITH_MPI=OFF -DCMAKE_CUDA_ARCHITECTURES=90 "-DCMAKE_PREFIX_PATH=$PREFIX" "${CMAKE_DEP_ARGS[@]}")

# ---- 2. configure and build ------------------------------------------------
TORCH_STATE=off
if [ -n "$TORCH_PREFIX" ] && stage configure 120 "${CONFIGURE[@]}" -DVITSCALE_WITH_TORCH=ON; then
  TORCH_STATE=on
else
  rm -rf "$BUILD/CMakeCache.txt"
  stage configure-no-torch 120 "${CONFIGURE[@]}" -DVITSCALE_WITH_TORCH=OFF
fi
TARGETS=(test_cuda vit_bench)
grep -q "vit_train" "$BUILD/build.ninja" 2>/dev/null && TARGETS+=(vit_train)
# The NCCL communicator and the data-parallel engine at world size 1 (issue 6).
grep -q "test_parallel" "$BUILD/build.ninja" 2>/dev/null && TARGETS+=(test_parallel)
# vit_train --cuda-graphs against the eager run (tests/train/trainer_cuda_graphs_test.cpp).
grep -q "test_train" "$BUILD/build.ninja" 2>/dev/null && TARGETS+=(test_train)
stage build 330 cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}"
if [ ! -x "$BUILD/tests/test_cuda" ] && [ "$TORCH_STATE" = on ]; then
  # LibTorch can break the build (ABI, CUDA mismatch); retry without it.
  rm -rf "$BUILD/CMakeCache.txt"
  stage configure-no-torch 120 "${CONFIGURE[@]}" -DVITSCALE_WITH_TORCH=OFF
  TORCH_STATE=off
  stage build-no-torch 240 cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}"
fi

# ---- 3. tests ----------------------------------------------------------------
if [ -x "$BUILD/tests/test_cuda" ]; then
  stage test_cuda 150 "$BUILD/tests/test_cuda" --durations yes
  if command -v compute-sanitizer >/dev/null 2>&1; then
    stage sanitizer 100 compute-sanitizer --tool memcheck --error-exitcode 3 \
      "$BUILD/tests/test_cuda" "[attention],[layernorm],[embed],[loss]"
  fi
fi

if [ -x "$BUILD/tests/test_parallel" ]; then
  stage test_nccl 90 "$BUILD/tests/test_parallel" "[nccl]" --durations yes
fi
if [ -x "$BUILD/tests/test_train" ]; then
  stage test_train_graphs 90 "$BUILD/tests/test_train" "[graphs]" --durations yes
fi

# ---- 4. benchmarks -------------------------------------------------------------
if [ -x "$BUILD/tools/vit_bench/vit_bench" ]; then
  stage vit_bench 200 "$BUILD/tools/vit_bench/vit_bench" --out "$OUT/bench" --reps 30 --warmup 5
fi

# ---- 5. a short real training run ------------------------------------------
TRAIN="$BUILD/train/vit_train"
if [ -x "$TRAIN" ]; then
  TRAIN_ARGS=(--device cuda --bf16 --model vit-small --dataset synthetic --synthetic-train 8192
    --synthetic-test 1024 --micro-batch-size 256 --max-steps 150 --steps-per-print 25)
  stage train_bf16 120 "$TRAIN" "${TRAIN_ARGS[@]}" --cuda-graphs --metrics-out "$OUT/logs/train_metrics.jsonl"
  # The same run without graphs: what the replay saves, in the two final records' images/s.
  stage train_bf16_eager 120 "$TRAIN" "${TRAIN_ARGS[@]}" --metrics-out "$OUT/logs/train_eager_metrics.jsonl"
fi

# ---- report ----------------------------------------------------------------------
{
  echo "# vitscale GPU check"
  echo
  echo "Total $(($(date +%s) - T_START)) s; LibTorch in the build: $TORCH_STATE."
  echo
  echo '```'
  cat "$LOGS/env.log"
  echo '```'
  echo
  echo "| stage | result | time |"
  echo "|---|---|---|"
  printf '%s\n' "${STAGES[@]}"
  echo
  if [ -f "$LOGS/test_cuda.log" ]; then
    echo "## CUDA tests"
    echo '```'
    grep -E "^(test cases|assertions)|FAILED|failed|with expansion|relative error|skipped" "$LOGS/test_cuda.log" | head -60
    echo '```'
  fi
  if [ -f "$LOGS/sanitizer.log" ]; then
    echo "## compute-sanitizer (memcheck)"
    echo '```'
    grep -E "ERROR SUMMARY|Invalid|test cases" "$LOGS/sanitizer.log" | head -20
    echo '```'
  fi
  if [ -f "$OUT/bench/results.md" ]; then
    echo "## vit_bench"
    cat "$OUT/bench/results.md"
  fi
  if [ -f "$LOGS/test_train_graphs.log" ]; then
    echo "## vit_train --cuda-graphs vs eager (tests)"
    echo '```'
    grep -E "^(test cases|assertions)|FAILED|failed|with expansion|skipped" "$LOGS/test_train_graphs.log" | head -30
    echo '```'
  fi
  for run in train_bf16 train_bf16_eager; do
    if [ -f "$LOGS/$run.log" ]; then
      echo "## $run (ViT-S/4, bf16, synthetic; $([ $run = train_bf16 ] && echo "CUDA graphs" || echo "eager"))"
      echo '```'
      tail -n 12 "$LOGS/$run.log"
      echo '```'
    fi
  done
} >"$REPORT"
echo "report: $REPORT"
