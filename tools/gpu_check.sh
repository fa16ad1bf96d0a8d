#!/usr/bin/env bash
# gpu_check.sh — the one prepared GPU check (docs/cuda.md, "The one-shot GPU check").
#
#   tools/gpu_check.sh --out DIR [--deadline S] [--part 1|2|all] [--stages a,b]
#                      [--dry-run [--full-build]] [--build DIR] [--deps DIR]
#   tools/gpu_check.sh --check-budgets [--deadline S]
#
# On the air-gapped GPU node (CUDA, PyTorch with LibTorch, CMake, ninja): unpacks
# the Debian packages carried in .deps (tools/fetch_gpu_deps.sh), configures with
# the system's copies hidden from CMake, then runs the stages below in order of
# value, each given what is left of one deadline (default 420 s) and recorded
# skipped, with the reason, when it cannot fit. DIR/report.md is rewritten after
# every stage and from the EXIT trap; DIR/gpu_check.log holds every stage's log.
# --part 1 (default) is the first call; --part 2 runs what part 1 skipped (its
# verdicts are kept in <build>/gpu_check_state) and then the part-2 stages.
# --dry-run (no GPU needed; CI runs it): configure against .deps only, build and
# run the dependency probe, record the GPU stages as "no GPU".
# Exit status: 0 when no stage failed or timed out, 1 otherwise, 2 for bad usage.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=gpu_check/lib.sh
. "$HERE/gpu_check/lib.sh"

OUT="" DEADLINE=420 RESERVE=5 PART_ARG=1 STAGES_ARG="" DRY=0 FULL_BUILD=0 BUILD="" DEPS_DIR="$ROOT/.deps" BUDGETS=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --deadline) DEADLINE=$2; shift 2 ;;
    --part) PART_ARG=$2; shift 2 ;;
    --stages) STAGES_ARG=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --full-build) FULL_BUILD=1; shift ;;
    --build) BUILD=$2; shift 2 ;;
    --deps) DEPS_DIR=$2; shift 2 ;;
    --check-budgets) BUDGETS=1; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "gpu_check: unknown option $1" >&2; exit 2 ;;
    *) OUT=$1; shift ;;  # the old form: gpu_check.sh <outdir>
  esac
done

# ---- the stages, in order of value ------------------------------------------------------
# Part 1 budgets sum to 415 s (+5 for the report) on the 16-core GPU node; part 2's to 390 s.
def_stage env 1 host 15 "" "toolkit >= 12 (cudaGraphInstantiate signature), GPU, driver, glibc, LibTorch"
def_stage deps 1 host 10 "" ".deps present and unpacked"
def_stage configure 1 host 40 "" "CMake configures (CUDA sm_90, no LibTorch, no MPI) with the system's Catch2, nlohmann-json, CLI11, OpenBLAS, zlib hidden"
def_stage build_core 1 host 85 "configure" "kernels, backend and test_cuda compile and link for sm_90 (dry run: the dependency probe only)"
def_stage deps_check 1 host 10 "build_core" "CMake's cache, the compiler's headers and the loader's libraries all come from .deps"
def_stage probe_event 1 gpu 15 "build_core" "cudaEventQuery's not-ready status: does it stick as the last error, and do the helpers clear it"
def_stage test_cuda 1 gpu 70 "build_core" "every op against its CPU twin, graphs, the whole model, bf16 training"
def_stage build_dp 1 host 40 "configure" "the NCCL communicator, data-parallel engine and trainer tests compile and link"
def_stage test_nccl 1 gpu 25 "build_dp" "NCCL at world size 1: collectives and data-parallel training == plain training"
def_stage test_graphs 1 gpu 35 "build_dp" "vit_train --cuda-graphs replays compute the eager run's losses"
def_stage build_bench 1 host 25 "configure" "vit_bench and vit_train compile and link"
def_stage vit_bench 1 gpu 45 "build_bench" "kernel times against copy bandwidth and the GEMM rate; the ViT-S/4 bf16 step"
def_stage configure_torch 2 host 45 "" "CMake configures with the node's LibTorch (separate build folder)"
def_stage build_torch 2 host 150 "configure_torch" "vit_bench with the LibTorch baseline compiles and links"
def_stage bench_torch 2 gpu 60 "build_torch" "our kernels and step side by side with LibTorch's (the bars of docs/cuda.md)"
def_stage sanitizer 2 gpu 60 "build_core" "compute-sanitizer memcheck over the attention, layernorm, embedding and loss tests"
def_stage train_bf16 2 gpu 40 "build_bench" "a short ViT-S/4 bf16 training run with CUDA graphs"
def_stage train_bf16_eager 2 gpu 35 "build_bench" "the same run eager: what the graphs save"

if ((BUDGETS)); then
  check_budgets
  exit $?
fi
[[ -n $OUT ]] || {
  echo "usage: tools/gpu_check.sh --out DIR [--deadline S] [--part 1|2|all] [--dry-run]" >&2
  exit 2
}
[[ $PART_ARG =~ ^(1|2|all)$ ]] || {
  echo "gpu_check: --part takes 1, 2 or all" >&2
  exit 2
}

T0=$(now)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[[ -n $BUILD ]] || BUILD="$ROOT/build-gpu$( ((DRY)) && echo -dry)"
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
BUILD_TORCH="$BUILD-torch"
DROOT="$BUILD/deps-root"  # unpacked here, never inside .deps (which travels and must stay small)
LOGDIR="$BUILD/gpu_check_logs"
STATE="$BUILD/gpu_check_state"
mkdir -p "$LOGDIR"
: >"$OUT/gpu_check.log"
JOBS=${VITSCALE_BUILD_JOBS:-$(nproc 2>/dev/null || echo 8)}
TITLE="vitscale GPU check, part $PART_ARG$( ((DRY)) && echo ' (dry run)')"
HAVE_GPU=0
((DRY)) || { nvidia-smi -L 2>/dev/null | grep -q '^GPU ' && HAVE_GPU=1; }
load_state
install_traps

# ---- which stages this call runs ----------------------------------------------------------
done_before() { [[ ${PREV[$1]:-} == ok || ${PREV[$1]:-} == FAILED* ]]; }
select_with_needs() {
  local d
  SELECTED[$1]=1
  for d in ${NEEDS[$1]}; do select_with_needs "$d"; done
}
for n in env deps configure; do SELECTED[$n]=1; done
for n in "${STAGE_ORDER[@]}"; do
  if [[ -n $STAGES_ARG ]]; then
    [[ ,$STAGES_ARG, == *",$n,"* ]] && select_with_needs "$n"
  elif [[ $PART_ARG == all || ${PART[$n]} == "$PART_ARG" ]]; then
    select_with_needs "$n"
  elif [[ $PART_ARG == 2 && ${PART[$n]} == 1 && ${KIND[$n]} == gpu && -f $STATE ]] && ! done_before "$n"; then
    select_with_needs "$n"  # part 1 skipped it (deadline, a failed build, an interruption): run it now
  fi
done

# ---- the dependencies and CMake's arguments -----------------------------------------------
DEBS=$(ls "$DEPS_DIR"/*.deb 2>/dev/null | wc -l)
LIBDIR="$DROOT/usr/lib/x86_64-linux-gnu"
CONFIG_COMMON=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DVITSCALE_WITH_MPI=OFF -DVITSCALE_BUILD_TESTS=ON
  -DCMAKE_CUDA_ARCHITECTURES=90)
DEP_ARGS=() DEP_PREFIX=""
if ((DEBS > 0)); then
  DEPS_STATUS="$DEBS packages in $DEPS_DIR, unpacked into $DROOT; the system's copies are hidden from CMake."
  DEP_PREFIX="$DROOT/usr"
  DEP_ARGS=("-DCMAKE_LIBRARY_PATH=$LIBDIR/openblas-pthread;$LIBDIR"
    "-DCBLAS_INCLUDE_DIR=$DROOT/usr/include/x86_64-linux-gnu/openblas-pthread"
    "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$LIBDIR -Wl,-rpath,$LIBDIR/openblas-pthread:$LIBDIR")
  HIDE_SYSTEM=("-DCMAKE_IGNORE_PREFIX_PATH=/usr;/usr/local;/")
  export LD_LIBRARY_PATH="$LIBDIR/openblas-pthread:$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  DEPS_STATUS="**.deps IS MISSING** ($DEPS_DIR has no .deb files): the build falls back to the system's Catch2, \
nlohmann-json, CLI11, OpenBLAS and zlib, which the air-gapped GPU node does not have, and that the build needs \
nothing else is NOT proven. Run tools/fetch_gpu_deps.sh on the dev machine and carry .deps."
  HIDE_SYSTEM=()
fi
# NCCL: the toolkit's copy, else the one PyTorch's wheels bring (nvidia-nccl-cu13).
NVCC=$(command -v nvcc || true)
NCCL_ARGS=()
if [[ -n $NVCC && ! -f $(dirname "$NVCC")/../include/nccl.h ]]; then
  NCCL_HOME=$(timeout 30 python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)
  if [[ -n $NCCL_HOME && -f $NCCL_HOME/include/nccl.h ]]; then
    NCCL_ARGS=("-DNCCL_INCLUDE_DIR=$NCCL_HOME/include" "-DNCCL_LIBRARY=$(ls "$NCCL_HOME"/lib/libnccl.so* | head -1)")
  fi
fi
CUDA_SWITCH=ON
[[ -z $NVCC ]] && ((DRY)) && CUDA_SWITCH=OFF  # a dry run on a machine without the toolkit still checks the rest

report_header() {
  echo "- .deps: $DEPS_STATUS"
  echo "- GPU: $( ((HAVE_GPU)) && nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 ||
    echo "none$( ((DRY)) && echo ' (dry run: GPU stages are not run)')")"
  echo "- build: $BUILD (CUDA $CUDA_SWITCH, sm_90, $JOBS jobs)${NCCL_ARGS:+; NCCL from the PyTorch wheel nvidia-nccl}"
  if [[ $PART_ARG == 2 ]]; then
    if [[ -f $STATE ]]; then
      local n line=""
      for n in "${STAGE_ORDER[@]}"; do
        [[ ${PART[$n]} == 1 && ${KIND[$n]} == gpu && -n ${PREV[$n]:-} ]] && line+=" $n: ${PREV[$n]};"
      done
      echo "- part 1 (from $STATE):${line:- nothing recorded}"
    else
      echo "- part 1: no record in $STATE (a fresh machine?): part-1 stages are not rerun; name them with --stages"
    fi
  fi
  echo "- logs: gpu_check.log beside this report (every stage, in order); bench/ and bench_torch/ hold vit_bench's tables"
}

# Summary lines from a stage's log, in a fenced block (nothing when the stage left no log).
excerpt() {
  local name=$1 pattern=$2 lines=${3:-40} log="$LOGDIR/$1.log"
  [[ -f $log && -n ${VERDICT[$name]:-} ]] || return 0
  echo "### $name"
  echo '```'
  grep -E "$pattern" "$log" | head -n "$lines"
  echo '```'
}
CATCH_SUMMARY='^(test cases|assertions|All tests)|FAILED|failed|with expansion|relative error|skipped|REQUIRE|CHECK'
report_sections() {
  local n not_run=()
  excerpt env '.' 30
  excerpt deps_check '.' 40
  excerpt probe_event "$CATCH_SUMMARY|probe:" 30
  excerpt test_cuda "$CATCH_SUMMARY|^[0-9.]+ s: " 60
  excerpt test_nccl "$CATCH_SUMMARY" 30
  excerpt test_graphs "$CATCH_SUMMARY" 30
  excerpt sanitizer 'ERROR SUMMARY|Invalid|test cases|Device not supported' 20
  for n in train_bf16 train_bf16_eager; do excerpt "$n" '.' 14; done
  [[ -f $OUT/bench/results.md ]] && { echo "### vit_bench"; cat "$OUT/bench/results.md"; }
  [[ -f $OUT/bench_torch/results.md ]] && { echo "### vit_bench with LibTorch"; cat "$OUT/bench_torch/results.md"; }
  for n in "${STAGE_ORDER[@]}"; do
    [[ ${KIND[$n]} == gpu && ${VERDICT[$n]:-${PREV[$n]:-}} != ok ]] && not_run+=("$n")
  done
  echo
  echo "Still compiled, not run (no passing GPU stage yet): ${not_run[*]:-nothing}."
}

# ---- running them ------------------------------------------------------------------------
# gpu <name> <program> [args...]: a GPU stage (recorded "no GPU" without one).
gpu() {
  local name=$1
  shift
  [[ -n ${SELECTED[$name]:-} ]] || return 0
  if ((!HAVE_GPU)); then
    skip_stage "$name" "no GPU$( ((DRY)) && echo ' (dry run)')"
    return 0
  fi
  run_stage "$name" "$@"
}
host() {
  [[ -n ${SELECTED[$1]:-} ]] || return 0
  run_stage "$@"
}
write_report

host env bash "$HERE/gpu_check/steps.sh" env
if ((DEBS > 0)); then
  host deps bash "$HERE/gpu_check/steps.sh" unpack "$DEPS_DIR" "$DROOT"
else
  skip_stage deps ".deps MISSING (see above)"
fi
if [[ ${VERDICT[deps]} != FAILED* ]]; then
  host configure cmake -S "$ROOT" -B "$BUILD" "${CONFIG_COMMON[@]}" "-DVITSCALE_WITH_CUDA=$CUDA_SWITCH" \
    -DVITSCALE_WITH_TORCH=OFF ${DEP_PREFIX:+"-DCMAKE_PREFIX_PATH=$DEP_PREFIX"} "${DEP_ARGS[@]}" "${HIDE_SYSTEM[@]}" \
    "${NCCL_ARGS[@]}"
else
  skip_stage configure "needs deps (${VERDICT[deps]})"
fi

T_CORE=(vitscale_deps_probe)
((DRY && !FULL_BUILD)) || T_CORE+=(test_cuda)
host build_core cmake --build "$BUILD" -j "$JOBS" --target "${T_CORE[@]}"
if ((DEBS > 0)); then
  host deps_check bash "$HERE/gpu_check/steps.sh" verify "$BUILD" "$DROOT"
else
  skip_stage deps_check ".deps missing: the build used the system's copies"
fi
gpu probe_event "$BUILD/tests/test_cuda" "[probe]" --durations yes
gpu test_cuda "$BUILD/tests/test_cuda" --durations yes

dry_build() {  # host build stages of a dry run compile nothing unless --full-build (CI has 2 cores)
  if ((DRY && !FULL_BUILD)) && [[ -n ${SELECTED[$1]:-} ]]; then
    skip_stage "$1" "dry run (--full-build compiles it)"
    return 0
  fi
  host "$@"
}
dry_build build_dp cmake --build "$BUILD" -j "$JOBS" --target test_parallel test_train
gpu test_nccl "$BUILD/tests/test_parallel" "[nccl]" --durations yes
gpu test_graphs "$BUILD/tests/test_train" "[graphs]" --durations yes
dry_build build_bench cmake --build "$BUILD" -j "$JOBS" --target vit_bench vit_train
gpu vit_bench "$BUILD/tools/vit_bench/vit_bench" --out "$OUT/bench" --models small,base16 --reps 20 --warmup 3

# ---- part 2 --------------------------------------------------------------------------------
if [[ -n ${SELECTED[configure_torch]:-} ]]; then
  TORCH_PREFIX=$(timeout 60 python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
  if ((DRY)); then
    skip_stage configure_torch "dry run (LibTorch comes from the node's PyTorch)"
  elif [[ -z $TORCH_PREFIX ]]; then
    skip_stage configure_torch "python3 has no torch"
  else
    host configure_torch cmake -S "$ROOT" -B "$BUILD_TORCH" "${CONFIG_COMMON[@]}" -DVITSCALE_WITH_CUDA=ON \
      -DVITSCALE_WITH_TORCH=ON "-DCMAKE_PREFIX_PATH=${DEP_PREFIX:+$DEP_PREFIX;}$TORCH_PREFIX" "${DEP_ARGS[@]}" \
      "${NCCL_ARGS[@]}"
  fi
fi
host build_torch cmake --build "$BUILD_TORCH" -j "$JOBS" --target vit_bench
gpu bench_torch "$BUILD_TORCH/tools/vit_bench/vit_bench" --out "$OUT/bench_torch" --reps 20 --warmup 3
if command -v compute-sanitizer >/dev/null || ((!HAVE_GPU)); then
  gpu sanitizer compute-sanitizer --tool memcheck --error-exitcode 3 "$BUILD/tests/test_cuda" \
    "[attention],[layernorm],[embed],[loss]"
else
  [[ -n ${SELECTED[sanitizer]:-} ]] && skip_stage sanitizer "no compute-sanitizer on the PATH"
fi
TRAIN=("$BUILD/train/vit_train" --device cuda --bf16 --model vit-small --dataset synthetic --synthetic-train 8192
  --synthetic-test 1024 --micro-batch-size 256 --max-steps 100 --steps-per-print 25 --randaugment-ops 0 --mixup-alpha 0)
gpu train_bf16 "${TRAIN[@]}" --cuda-graphs --metrics-out "$LOGDIR/train_metrics.jsonl"
gpu train_bf16_eager "${TRAIN[@]}" --metrics-out "$LOGDIR/train_eager_metrics.jsonl"

FINISHED=1
rc=0
for n in "${STAGE_ORDER[@]}"; do
  case ${VERDICT[$n]:-} in FAILED* | TIMEOUT* | SKIPPED\ BY*) rc=1 ;; esac
done
echo "report: $OUT/report.md"
exit $rc
