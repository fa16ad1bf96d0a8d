#!/usr/bin/env bash
# steps.sh — the host-side stages of tools/gpu_check.sh that are more than one command.
#   steps.sh env                        what the node has; fails when the toolkit cannot build vitscale
#   steps.sh unpack <debs dir> <root>   dpkg -x every .deb of .deps into <root> (once)
#   steps.sh verify <build> <root>      the build used .deps, not the system: CMake's cache, the
#                                       headers the compiler read, the libraries the loader picks
set -uo pipefail

# "13.0" from nvcc --version; empty when there is no nvcc.
cuda_release() { nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p'; }

step_env() {
  local bad=0 rel
  date -u
  echo "host: $(uname -n), $(nproc) cores, kernel $(uname -r), $( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"))"
  echo "glibc: $(ldd --version 2>/dev/null | head -1)  (the .deps packages are Debian 12's: they need glibc >= 2.36)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  else
    echo "nvidia-smi: not found"
  fi
  rel=$(cuda_release)
  if [[ -z $rel ]]; then
    echo "nvcc: NOT FOUND"
    bad=1
  else
    echo "nvcc: CUDA $rel ($(command -v nvcc))"
    # CudaGraph::adopt calls cudaGraphInstantiate(&exec, graph, flags): the CUDA >= 12 signature.
    if ((${rel%%.*} >= 12)); then
      echo "cudaGraphInstantiate(exec, graph, flags): CUDA $rel >= 12, the signature vitscale uses: ok"
    else
      echo "cudaGraphInstantiate(exec, graph, flags): CUDA $rel < 12 has another signature: NOT SUPPORTED"
      bad=1
    fi
  fi
  echo "cmake: $(cmake --version 2>/dev/null | head -1) (vitscale needs >= 3.25)"
  echo "ninja: $(ninja --version 2>/dev/null || echo 'not found')"
  echo "compute-sanitizer: $(compute-sanitizer --version 2>/dev/null | tail -1 || true)"
  timeout 8 python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"gpu", torch.cuda.is_available(), "cmake", torch.utils.cmake_prefix_path)' 2>&1 | tail -1
  return $bad
}

step_unpack() {
  local debs=$1 root=$2 f n=0
  if [[ -f $root/.unpacked ]]; then
    echo "already unpacked in $root"
    return 0
  fi
  rm -rf "$root"
  mkdir -p "$root"
  for f in "$debs"/*.deb; do
    [[ -e $f ]] || continue
    dpkg -x "$f" "$root" || return 1
    echo "unpacked $(basename "$f")"
    n=$((n + 1))
  done
  ((n > 0)) || {
    echo "no .deb files in $debs"
    return 1
  }
  # zlib1g-dev's libz.so points at the Debian runtime's file name; the node's own
  # libz.so.1 (zlib1g is an essential package everywhere) is what links and loads.
  local libdir="$root/usr/lib/x86_64-linux-gnu" sys
  sys=$(ls /lib/x86_64-linux-gnu/libz.so.1 /usr/lib/x86_64-linux-gnu/libz.so.1 2>/dev/null | head -1)
  [[ -n $sys ]] && ln -sfn "$sys" "$libdir/libz.so"
  touch "$root/.unpacked"
}

# verify <build> <root>: every one of the five dependencies must resolve under <root>.
step_verify() {
  local build=$1 root=$2 bad=0 key val probe obj header lib
  echo "CMake's cache (each must lie under $root):"
  for key in Catch2_DIR CLI11_DIR nlohmann_json_DIR BLAS_openblas_LIBRARY CBLAS_INCLUDE_DIR ZLIB_INCLUDE_DIR; do
    val=$(sed -n "s/^$key:[A-Z]*=//p" "$build/CMakeCache.txt")
    if [[ $val == "$root"/* ]]; then
      echo "  ok   $key = $val"
    else
      echo "  BAD  $key = ${val:-unset}"
      bad=1
    fi
  done
  probe="$build/tests/vitscale_deps_probe"
  obj=$(cd "$build" && find . -path '*vitscale_deps_probe.dir/*deps_probe.cpp.o' | head -1)
  echo "headers the compiler read for the probe (${obj:-object not found}):"
  for header in catch2/catch.hpp nlohmann/json.hpp CLI/CLI.hpp cblas.h zlib.h; do
    val=$(cd "$build" && ninja -t deps "$obj" 2>/dev/null | grep -E "/$header\$" | head -1 | sed 's/^ *//')
    if [[ $val == "$root"/* ]]; then
      echo "  ok   $header: $val"
    else
      echo "  BAD  $header: ${val:-not among the headers of the probe}"
      bad=1
    fi
  done
  echo "libraries the loader picks for the probe:"
  for lib in libopenblas libgfortran; do
    val=$(ldd "$probe" 2>/dev/null | grep "$lib" | head -1 | sed 's/^[[:space:]]*//')
    if [[ $val == *"$root"/* ]]; then
      echo "  ok   $val"
    else
      echo "  BAD  $lib: ${val:-not linked}"
      bad=1
    fi
  done
  echo "zlib runtime (the node's own, an essential package): $(ldd "$probe" 2>/dev/null | grep libz | sed 's/^[[:space:]]*//')"
  echo "the probe (Catch2 main; CLI11, nlohmann-json, cblas_sgemm, zlib round trip):"
  "$probe" || bad=1
  if ((bad)); then
    echo "verify: the build reached past .deps"
  else
    echo "verify: the build uses .deps alone (besides CUDA, CMake, ninja and the C/C++ runtime)"
  fi
  return $bad
}

cmd=${1:?usage: steps.sh env | unpack <debs> <root> | verify <build> <root>}
shift
case $cmd in
  env) step_env ;;
  unpack) step_unpack "$@" ;;
  verify) step_verify "$@" ;;
  *)
    echo "steps.sh: unknown step $cmd" >&2
    exit 2
    ;;
esac
