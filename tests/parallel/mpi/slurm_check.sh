#!/usr/bin/env bash
# vit_train under Slurm on this one node: a private slurmctld + slurmd (own
# config, spool and ports, stopped on exit), then
#   srun -n 2 --mpi=pmix vit_train   == mpirun -np 2 vit_train (bit for bit) ~ one process (1e-6)
#   sbatch around the same srun       == the same losses
#   srun --mpi=pmi2 / --mpi=none      -> vit_train's one line of advice
# Skips (77) when Slurm (slurm-wlm, munge) is not installed or not root.
# Usage: slurm_check.sh MPIRUN "MPIRUN_FLAGS" VIT_TRAIN
set -uo pipefail
mpirun=$1 flags=$2 vit_train=$3
for tool in slurmctld slurmd srun sbatch munged; do
  command -v $tool >/dev/null || { echo "SKIP: $tool not installed (apt-get install slurm-wlm munge)"; exit 77; }
done
[[ $(id -u) -eq 0 ]] || { echo "SKIP: the private Slurm daemons need root"; exit 77; }
ls /usr/lib/*/slurm-wlm/mpi_pmix*.so >/dev/null 2>&1 ||
  { echo "SKIP: Slurm has no PMIx plugin"; exit 77; }
work=$(mktemp -d)
pids=()
cleanup() {
  # This private cluster's steps first (their slurmstepd outlive the daemons), then the daemons.
  [[ ${#pids[@]} -gt 0 ]] && { scancel --full --signal=KILL --user=root >/dev/null 2>&1; sleep 1; }
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  [[ -n ${own_munged:-} ]] && pkill -x munged
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
host=$(hostname -s)
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/ctld" "$work/d"
export SLURM_CONF=$work/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=vitscale-test
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$work/ctld
SlurmdSpoolDir=$work/d
SlurmctldPidFile=$work/ctld.pid
SlurmdPidFile=$work/d.pid
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
EOF
if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null
  munged --force >/dev/null 2>&1 || { echo "SKIP: munged does not start"; exit 77; }
  own_munged=1
fi
slurmctld -D -f "$SLURM_CONF" >"$work/ctld.log" 2>&1 & pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$work/d.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 0.2; done
sinfo -h -o %T 2>/dev/null | grep -q idle || { echo "SKIP: the private Slurm did not come up"; tail -n 3 "$work"/*.log; exit 77; }
# The node shows idle before slurmctld has settled its socket/core layout from
# slurmd's registration; a job submitted in that window is refused
# ("Requested partition configuration not available now"). Give it a moment.
sleep 3

export OMP_NUM_THREADS=1
tiny=(--dataset synthetic --synthetic-train 256 --synthetic-test 64 --synthetic-image-size 16 --image-size 16
      --patch-size 4 --dim 32 --depth 2 --heads 2 --mlp-dim 64 --train-batch-size 16 --max-steps 6
      --steps-per-print 1 --threads 1)
fail=0
timeout 120 srun -n 2 --mpi=pmix "$vit_train" "${tiny[@]}" --micro-batch-size 8 --metrics-out "$work/srun.jsonl" \
  >"$work/srun.txt" 2>&1 || { echo "FAIL: srun --mpi=pmix"; cat "$work/srun.txt"; tail -n 5 "$work/d.log" "$work/ctld.log"; fail=1; }
# shellcheck disable=SC2086
$mpirun $flags -np 2 "$vit_train" "${tiny[@]}" --micro-batch-size 8 --metrics-out "$work/mpirun.jsonl" >/dev/null 2>&1
"$vit_train" "${tiny[@]}" --micro-batch-size 16 --metrics-out "$work/single.jsonl" >/dev/null 2>&1
cat >"$work/job.sh" <<EOF
#!/bin/bash
#SBATCH --ntasks=2
#SBATCH --output=$work/sbatch.out
export OMP_NUM_THREADS=1
srun --mpi=pmix $vit_train ${tiny[*]} --micro-batch-size 8 --metrics-out $work/sbatch.jsonl
EOF
sbatch --wait "$work/job.sh" >/dev/null 2>&1 || { echo "FAIL: sbatch"; cat "$work/sbatch.out"; fail=1; }
python3 - "$work" <<'EOF' || fail=1
import json, sys
w = sys.argv[1]
def losses(name):
    return [r["loss"] for r in map(json.loads, open(f"{w}/{name}.jsonl")) if r.get("event") == "train"]
srun, mpirun, single, sbatch = (losses(n) for n in ("srun", "mpirun", "single", "sbatch"))
worst = max(abs(a - b) / abs(b) for a, b in zip(srun, single))
print(f"srun --mpi=pmix, 6 steps: final loss {srun[-1]!r}; mpirun {mpirun[-1]!r}; one process {single[-1]!r}")
print(f"  srun == mpirun bit for bit: {srun == mpirun}; sbatch == mpirun: {sbatch == mpirun}; "
      f"worst relative difference to one process {worst:.1e}")
sys.exit(0 if len(srun) == 6 and srun == mpirun and sbatch == mpirun and worst <= 1e-6 else 1)
EOF
for plugin in pmi2 none; do
  timeout 60 srun -n 2 --mpi=$plugin "$vit_train" "${tiny[@]}" --micro-batch-size 8 >"$work/$plugin.txt" 2>&1
  # Rank 0 prints it before MPI_Init; the ranks' streams interleave, so anywhere.
  if grep -q "^vitscale: started by srun without PMIx (--mpi=$plugin).*srun --mpi=pmix" "$work/$plugin.txt"; then
    echo "srun --mpi=$plugin: $(grep -c '^vitscale: started by srun' "$work/$plugin.txt") line of advice"
  else
    echo "FAIL: srun --mpi=$plugin: no advice line"; head -n 3 "$work/$plugin.txt"; fail=1
  fi
done
exit $fail
