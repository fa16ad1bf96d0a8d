#!/usr/bin/env bash
# A checkpoint saved by a ZeRO-1 run on 2 ranks (global batch 24 = micro 12 x 2
# ranks) resumes in one process at stage 0 with micro 8 x accumulation 3: the
# steps continue on the same data and the losses follow an uninterrupted
# one-process run (micro 24) to 1e-4. ctest runs this (tests/parallel/tests.cmake).
#
# Usage: resume_other_world_check.sh MPIRUN "MPIRUN_FLAGS" VIT_TRAIN
set -euo pipefail
mpirun=$1 flags=$2 vit_train=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tiny=(--dataset synthetic --synthetic-train 480 --synthetic-test 64 --synthetic-image-size 16 --image-size 16
      --patch-size 4 --dim 32 --depth 2 --heads 2 --mlp-dim 64 --train-batch-size 24 --max-steps 12
      --steps-per-print 1 --threads 1)
# shellcheck disable=SC2086
$mpirun $flags -np 2 "$vit_train" "${tiny[@]}" --micro-batch-size 12 --zero-stage 1 --stop-at-step 6 \
  --save-dir "$work/ckpt" --metrics-out "$work/parts.jsonl" >"$work/first.txt" 2>&1 ||
  { cat "$work/first.txt"; exit 1; }
"$vit_train" "${tiny[@]}" --micro-batch-size 8 --gradient-accumulation-steps 3 --zero-stage 0 --resume "$work/ckpt" \
  --save-dir "$work/ckpt" --metrics-out "$work/parts.jsonl" >"$work/second.txt" 2>&1 ||
  { cat "$work/second.txt"; exit 1; }
grep "continues as micro 8 x accumulation 3 x world 1" "$work/second.txt"
"$vit_train" "${tiny[@]}" --micro-batch-size 24 --metrics-out "$work/whole.jsonl" >/dev/null 2>&1
python3 - "$work/whole.jsonl" "$work/parts.jsonl" <<'EOF'
import json, sys
def losses(path):
    return {r["step"]: r["loss"] for r in map(json.loads, open(path)) if r.get("event") == "train"}
whole, parts = losses(sys.argv[1]), losses(sys.argv[2])
assert sorted(parts) == list(range(1, 13)), f"steps logged: {sorted(parts)}"
worst = max(abs(parts[s] - whole[s]) / abs(whole[s]) for s in whole)
print(f"12 steps; worst relative loss difference {worst:.2e} (steps 1-6 on 2 ranks, 7-12 resumed on 1)")
sys.exit(0 if worst <= 1e-4 else 1)
EOF
