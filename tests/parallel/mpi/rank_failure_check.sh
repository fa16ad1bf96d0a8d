#!/usr/bin/env bash
# One rank fails; the whole job must end within 30 s, non-zero, with that
# rank's one-line error on stderr (ctest runs this, tests/parallel/tests.cmake).
#
# Usage: rank_failure_check.sh MPIRUN "MPIRUN_FLAGS" VIT_TRAIN NP SCENARIO
#   metrics    rank 0 (the rank that writes metrics) cannot open --metrics-out
#   bad_data   the last rank's Fashion-MNIST copy is truncated (MPMD launch,
#              same relative --data-dir, another working directory)
#   fault_0    rank 0 throws after step 3 (VITSCALE_TEST_FAULT, test-only)
#   fault_last the last rank throws after step 3
set -uo pipefail
mpirun=$1 flags=$2 vit_train=$3 np=$4 scenario=$5
limit_s=30
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
last=$((np - 1))
tiny=(--image-size 28 --patch-size 7 --dim 32 --depth 1 --heads 2 --mlp-dim 64 --micro-batch-size 8
      --steps-per-print 1 --threads 1)
synthetic=(--dataset synthetic --synthetic-train 512 --synthetic-test 64 --synthetic-image-size 28)
fm=/usr/share/datasets/fashion-mnist
env=()
# shellcheck disable=SC2206
mpi=($mpirun $flags)

case $scenario in
  metrics)
    cmd=("${mpi[@]}" -np "$np" "$vit_train" "${synthetic[@]}" "${tiny[@]}" --max-steps 100 --metrics-out
         "$work/no-such-dir/m.jsonl")
    want="rank 0: .*cannot open the metrics file" ;;
  bad_data)
    [[ -f $fm/train-images-idx3-ubyte.gz ]] || { echo "SKIP: no Fashion-MNIST at $fm"; exit 77; }
    mkdir -p "$work/good" "$work/bad/fm"
    ln -s "$fm" "$work/good/fm"
    cp "$fm"/*.gz "$work/bad/fm/"
    head -c 100000 "$fm/train-images-idx3-ubyte.gz" >"$work/bad/fm/train-images-idx3-ubyte.gz"
    args=("$vit_train" --dataset fashion-mnist --data-dir fm "${tiny[@]}" --max-steps 100)
    cmd=("${mpi[@]}")
    [[ $np -gt 1 ]] && cmd+=(-np "$last" -wdir "$work/good" "${args[@]}" :)
    cmd+=(-np 1 -wdir "$work/bad" "${args[@]}")
    want="rank $last: .*train-images-idx3-ubyte.gz" ;;
  fault_0 | fault_last)
    rank=0
    [[ $scenario == fault_last ]] && rank=$last
    env=(-x "VITSCALE_TEST_FAULT=$rank:3")
    cmd=("${mpi[@]}" "${env[@]}" -np "$np" "$vit_train" "${synthetic[@]}" "${tiny[@]}" --max-steps 1000)
    want="rank $rank: injected fault after step 3" ;;
  *) echo "unknown scenario $scenario"; exit 2 ;;
esac

start_ms=$(($(date +%s%N) / 1000000))
timeout -s KILL 90 "${cmd[@]}" >"$work/out" 2>"$work/err"
rc=$?
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
elapsed="$((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000)))"
echo "scenario $scenario, $np ranks: exit $rc after ${elapsed} s"
fail=0
if [[ $rc -eq 0 ]]; then echo "FAIL: the job exited 0"; fail=1; fi
if [[ $rc -eq 137 ]]; then echo "FAIL: the job hung (killed at 90 s)"; fail=1; fi
if ((elapsed_ms > limit_s * 1000)); then echo "FAIL: took ${elapsed} s (limit ${limit_s} s)"; fail=1; fi
if ! grep -Eq "^vit_train: error: $want" "$work/err"; then
  echo "FAIL: stderr has no line matching 'vit_train: error: $want'"; fail=1
fi
echo "--- stderr (first lines)"; head -n 12 "$work/err"
exit $fail
