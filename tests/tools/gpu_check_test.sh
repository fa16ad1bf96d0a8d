#!/usr/bin/env bash
# gpu_check_test.sh <case> [workdir] — tools/gpu_check.sh's own tests (CTest: gpu_check:*).
#   budgets         the default stage budgets of each part fit the default deadline
#   dry_run         the whole dry run: configure against .deps, probe built, run and verified, GPU stages "no GPU"
#   short_deadline  a deadline too short for the configure: stages recorded skipped with the reason, report written
#   killed          SIGTERM during a stage: the report says INTERRUPTED and names the stage
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CHECK="$ROOT/tools/gpu_check.sh"
case_=${1:?usage: gpu_check_test.sh budgets|dry_run|short_deadline|killed [workdir]}
WORK=${2:-$(mktemp -d)}
fails=0

expect() {  # expect <description> <command...>
  local what=$1
  shift
  if "$@"; then echo "ok:   $what"; else
    echo "FAIL: $what"
    fails=$((fails + 1))
  fi
}
has() { grep -qE -- "$2" "$1"; }
row() { grep -E "^\| [0-9]+ \| $2 \|" "$1/report.md"; }   # the report's table row of stage $2
row_has() { row "$1" "$2" | grep -qE -- "$3"; }

case $case_ in
  budgets)
    "$CHECK" --check-budgets
    expect "default budgets fit the default deadline (420 s)" bash -c "'$CHECK' --check-budgets >/dev/null"
    expect "a 300 s deadline is refused by the same check" bash -c "! '$CHECK' --check-budgets --deadline 300 >/dev/null"
    ;;
  dry_run)
    rm -rf "$WORK"
    mkdir -p "$WORK"
    deps="$ROOT/.deps"
    if ! ls "$deps"/*.deb >/dev/null 2>&1; then
      # A clean clone: fetch them into the build tree if apt can (seconds); else run without them.
      deps="$WORK/deps"
      if "$ROOT/tools/fetch_gpu_deps.sh" "$deps" >"$WORK/fetch.log" 2>&1; then
        echo "fetched .deps into $deps"
      else
        echo "could not fetch .deps (offline?); the dry run goes on without them:"
        tail -n 3 "$WORK/fetch.log"
      fi
    fi
    t0=$(date +%s)
    "$CHECK" --dry-run --part all --out "$WORK/out" --build "$WORK/build" \
      --deps "$deps"
    rc=$?
    echo "dry run: rc $rc in $(($(date +%s) - t0)) s"
    cat "$WORK/out/report.md"
    expect "the dry run exits 0" test "$rc" -eq 0
    expect "report.md is under the output folder" test -s "$WORK/out/report.md"
    expect "every stage's log is in gpu_check.log" has "$WORK/out/gpu_check.log" "===== configure: ok"
    expect "the report says the run finished" has "$WORK/out/report.md" "^Finished in"
    expect "env passed (toolkit >= 12)" row_has "$WORK/out" env "\| ok \|"
    expect "configure passed" row_has "$WORK/out" configure "\| ok \|"
    expect "the probe was built" row_has "$WORK/out" build_core "\| ok \|"
    for s in probe_event test_cuda test_nccl test_graphs vit_bench sanitizer train_bf16; do
      expect "$s is recorded 'no GPU'" row_has "$WORK/out" "$s" "skipped: no GPU \(dry run\)"
    done
    if ls "$deps"/*.deb >/dev/null 2>&1; then
      expect "deps_check proved the build used .deps alone" row_has "$WORK/out" deps_check "\| ok \|"
      expect "no BAD line in the verification" bash -c "! grep -q ' BAD ' '$WORK/build/gpu_check_logs/deps_check.log'"
    else
      expect "the report says plainly that .deps is missing" has "$WORK/out/report.md" "\.deps IS MISSING"
    fi
    expect "nothing was left in current_stage.log" test ! -e "$WORK/out/current_stage.log"
    ;;
  short_deadline)
    rm -rf "$WORK"
    "$CHECK" --dry-run --deadline 10 --out "$WORK/out" --build "$WORK/build" --deps "$WORK/no-deps"
    rc=$?
    cat "$WORK/out/report.md"
    expect "exits 0 (skipping is not failing)" test "$rc" -eq 0
    expect "the configure is skipped for the deadline, with the reason" \
      row_has "$WORK/out" configure "skipped: deadline: -?[0-9]+ s left .*, needs at least 10 s"
    expect "the build is skipped because the configure did not run" row_has "$WORK/out" build_core "needs configure"
    expect "the missing .deps are named" has "$WORK/out/report.md" "\.deps IS MISSING"
    ;;
  killed)
    rm -rf "$WORK"
    mkdir -p "$WORK"
    # A stand-in cmake that hangs, so the configure stage is running when the signal comes.
    mkdir -p "$WORK/bin"
    real_cmake=$(command -v cmake)
    printf '#!/bin/sh\ncase "$*" in *-S*) echo $$ >"%s/cmake.pid"; exec sleep 60 ;; esac\nexec %s "$@"\n' \
      "$WORK" "$real_cmake" >"$WORK/bin/cmake"
    chmod +x "$WORK/bin/cmake"
    PATH="$WORK/bin:$PATH" "$CHECK" --dry-run --out "$WORK/out" --build "$WORK/build" --deps "$WORK/no-deps" \
      >"$WORK/run.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
      grep -q 'Running `configure`' "$WORK/out/report.md" 2>/dev/null && break
      sleep 0.2
    done
    expect "while a stage runs, the report names it" has "$WORK/out/report.md" 'Running `configure`'
    expect "and its output streams to current_stage.log" test -e "$WORK/out/current_stage.log"
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    cat "$WORK/out/report.md"
    expect "the script exits 143 on SIGTERM" test "$rc" -eq 143
    expect "the report says INTERRUPTED" has "$WORK/out/report.md" "INTERRUPTED\*\* \(SIGTERM\)"
    expect "the running stage is recorded interrupted" row_has "$WORK/out" configure "INTERRUPTED \(SIGTERM\)"
    expect "the stages after it are still listed" row_has "$WORK/out" test_cuda "pending"
    expect "the stand-in cmake was stopped" bash -c "! kill -0 \$(cat '$WORK/cmake.pid') 2>/dev/null"
    ;;
  *)
    echo "unknown case $case_" >&2
    exit 2
    ;;
esac
echo "$case_: $fails failure(s)"
((fails == 0))
