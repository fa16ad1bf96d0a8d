#!/usr/bin/env bash
# A checkpoint saved by a run at one ZeRO stage and world size (global batch
# 24) resumes at another stage, world size, micro batch and accumulation: the
# steps continue on the same data and the losses follow an uninterrupted
# one-process run (micro 24) to 1e-4. Resumed at the same stage, world size
# and split, the losses equal the uninterrupted run of that split bit for bit.
# ctest runs this (tests/parallel/tests.cmake).
#
# Usage: resume_other_world_check.sh MPIRUN "MPIRUN_FLAGS" VIT_TRAIN
#          [SAVE: NP STAGE MICRO ACCUM  RESUME: NP STAGE MICRO ACCUM]
# (default: ZeRO-1 on 2 ranks, micro 12 -> stage 0 in one process, micro 8 x accumulation 3)
set -euo pipefail
mpirun=$1 flags=$2 vit_train=$3
save=("${4:-2}" "${5:-1}" "${6:-12}" "${7:-1}") resume=("${8:-1}" "${9:-0}" "${10:-8}" "${11:-3}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tiny=(--dataset synthetic --synthetic-train 480 --synthetic-test 64 --synthetic-image-size 16 --image-size 16
      --patch-size 4 --dim 32 --depth 2 --heads 2 --mlp-dim 64 --train-batch-size 24 --max-steps 12
      --steps-per-print 1 --threads 1 --reduce-bucket-size 2000 --stage3-param-persistence-threshold 0
      --mixup-alpha 0)  # mixup pairs rows within a micro batch: another split mixes other pairs (docs/training.md)
# run NP STAGE MICRO ACCUM ARGS...: vit_train on NP ranks (one plain process for 1)
run() {
  local np=$1 stage=$2 micro=$3 accum=$4
  shift 4
  local split=(--zero-stage "$stage" --micro-batch-size "$micro" --gradient-accumulation-steps "$accum")
  if [[ $np == 1 ]]; then
    "$vit_train" "${tiny[@]}" "${split[@]}" "$@"
  else
    # shellcheck disable=SC2086
    $mpirun $flags -np "$np" "$vit_train" "${tiny[@]}" "${split[@]}" "$@"
  fi
}
run "${save[@]}" --stop-at-step 6 --save-dir "$work/ckpt" --metrics-out "$work/parts.jsonl" >"$work/first.txt" 2>&1 ||
  { cat "$work/first.txt"; exit 1; }
run "${resume[@]}" --resume "$work/ckpt" --save-dir "$work/ckpt" --metrics-out "$work/parts.jsonl" \
  >"$work/second.txt" 2>&1 || { cat "$work/second.txt"; exit 1; }
same=0
if [[ "${save[*]}" == "${resume[*]}" ]]; then
  same=1
  run "${save[@]}" --metrics-out "$work/whole.jsonl" >/dev/null 2>&1
else
  grep "continues as micro ${resume[2]} x accumulation ${resume[3]} x world ${resume[0]}" "$work/second.txt" ||
    [[ "${save[2]} ${save[3]}" == "${resume[2]} ${resume[3]}" ]]
  run 1 0 24 1 --metrics-out "$work/whole.jsonl" >/dev/null 2>&1
fi
python3 - "$work/whole.jsonl" "$work/parts.jsonl" "$same" "${save[*]}" "${resume[*]}" <<'PY'
import json, sys
def losses(path):
    return {r["step"]: r["loss"] for r in map(json.loads, open(path)) if r.get("event") == "train"}
whole, parts, same = losses(sys.argv[1]), losses(sys.argv[2]), sys.argv[3] == "1"
assert sorted(parts) == list(range(1, 13)), f"steps logged: {sorted(parts)}"
worst = max(abs(parts[s] - whole[s]) / abs(whole[s]) for s in whole)
print(f"12 steps; worst relative loss difference {worst:.2e} (steps 1-6 as np/stage/micro/accum {sys.argv[4]}, "
      f"7-12 resumed as {sys.argv[5]}){' against the same split, uninterrupted' if same else ''}")
sys.exit(0 if worst <= (0.0 if same else 1e-4) else 1)
PY
