#!/usr/bin/env bash
# The main job: installs what is missing, builds vit_train, and trains the
# default model on Fashion-MNIST (Debian's dataset-fashion-mnist) — on the GPU
# when one is present, else on the CPU. Ends with the test accuracy, and keeps
# in runs/main/: the model (model.safetensors: weights in timm's names;
# model.json: timm's VisionTransformer arguments and the class names), the last
# checkpoint (checkpoint/), metrics.jsonl, curves.png, and vit_eval's report
# (model.eval.json: per-class accuracy, confusion matrix; confusion.png).
# Extra arguments go to vit_train (see `vit_train --help`), e.g. --max-steps 20.
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
build=${VITSCALE_RUN_BUILD_DIR:-build/run}
tools/build.sh "$build" -DVITSCALE_WITH_CUDA=$cuda -DVITSCALE_WITH_TORCH=OFF -DVITSCALE_BUILD_TESTS=OFF \
  "${extra[@]}" -- vit_train vit_eval >/dev/null
# vit_predict when libpng and libjpeg-turbo were found (README: "Use the trained model").
if grep -q "PNG/JPEG=ON" "$build.configure.log"; then
  cmake --build "$build" -j "${VITSCALE_BUILD_JOBS:-$(nproc)}" --target vit_predict >/dev/null
fi
out=${VITSCALE_RUN_DIR:-runs/main}
mkdir -p "$out"

# In the background so that a SIGTERM or SIGINT sent to this script reaches
# vit_train, which then saves a checkpoint and exits (continue with --resume).
# run.sh's own outputs unless the arguments name them (a flag given twice is refused).
args=()
for flag in metrics-out:"$out/metrics.jsonl" save-dir:"$out/checkpoint" export-model:"$out"; do
  name=--${flag%%:*}
  given=0
  for a in "$@"; do [[ $a == "$name" || $a == "$name="* ]] && given=1; done
  [[ $given == 0 ]] && args+=("$name" "${flag#*:}")
done
"$build/train/vit_train" "${args[@]}" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM
trap 'kill -INT "$pid" 2>/dev/null || true' INT
status=0
wait "$pid" || status=$?
while kill -0 "$pid" 2>/dev/null; do wait "$pid" || status=$?; done  # a trapped signal ends wait early
trap - TERM INT
if [[ $status -ne 0 ]]; then
  echo "run.sh: vit_train ended with status $status; metrics so far: $out/metrics.jsonl, checkpoint: $out/checkpoint" >&2
  exit "$status"
fi

# Per-class accuracy and the confusion matrix of the saved model (the same
# test accuracy and loss as training's last line).
"$build/train/vit_eval" "$out/model.safetensors" --out "$out/model.eval.json" >"$out/eval.txt"
grep -m1 '^test:' "$out/eval.txt" | sed 's/^/run.sh: vit_eval /'

plots="curves.png (not drawn: python3-matplotlib is not installed; apt-get install python3-matplotlib, then tools/plot_curves.py $out/metrics.jsonl)"
if tools/plot_curves.py "$out/metrics.jsonl" -o "$out/curves.png" >/dev/null &&
   tools/plot_curves.py --confusion "$out/model.eval.json" -o "$out/confusion.png" >/dev/null; then
  plots="curves.png, confusion.png"
elif [[ $? -ne 3 ]]; then
  plots="curves.png (plotting failed, see above)"
fi
latest=$(cat "$out/checkpoint/latest" 2>/dev/null || true)
cat <<MSG
run.sh: kept in $out/:
  model.safetensors  the trained weights, timm names, no optimizer state
  model.json         timm VisionTransformer arguments, class names, normalisation (README: "Use the trained model")
  checkpoint/$latest  the last checkpoint (weights + AdamW state; continue with --resume $out/checkpoint)
  metrics.jsonl      every logged step and evaluation
  model.eval.json    vit_eval: test accuracy and loss, per-class accuracy, confusion matrix (eval.txt: as printed)
  $plots
MSG
