#!/usr/bin/env bash
# The main job: installs what is missing, builds vit_train, and trains the
# default model on Fashion-MNIST (Debian's dataset-fashion-mnist) — on the GPU
# when one is present, else on the CPU. Ends with the test accuracy.
# Extra arguments go to vit_train (see `vit_train --help`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools/setup_deps.sh --minimal

cuda=OFF
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && command -v nvcc >/dev/null; then
  cuda=ON
fi
# Only the GPU's own architecture when building for this machine's card.
extra=()
if [[ $cuda == ON ]]; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
  [[ -n "$cap" ]] && extra+=(-DCMAKE_CUDA_ARCHITECTURES="$cap")
fi
tools/build.sh build/run -DVITSCALE_WITH_CUDA=$cuda -DVITSCALE_WITH_TORCH=OFF -DVITSCALE_BUILD_TESTS=OFF \
  "${extra[@]}" -- vit_train >/dev/null
mkdir -p runs/main
exec build/run/train/vit_train --metrics-out runs/main/metrics.jsonl "$@"
