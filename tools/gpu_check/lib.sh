# lib.sh — the machinery of tools/gpu_check.sh (sourced, not run).
#
# One deadline for the whole call. Stages run in the order they were declared;
# each gets min(its budget, what is left before the deadline less RESERVE) and
# is recorded "skipped" with the reason when that is under a quarter of its
# budget, or when a stage it needs did not pass. report.md is rewritten
# (atomically) when a stage starts, when it ends and from the EXIT trap, so
# the report under OUT is readable whenever the call is cut short; a stage's
# output streams into OUT/current_stage.log while it runs (so a kill -9 still
# leaves it) and is appended to OUT/gpu_check.log when it ends.
#
# The caller sets: OUT, LOGDIR, STATE, DEADLINE, RESERVE, T0, TITLE, and may
# define report_header and report_sections (extra Markdown after the table).

declare -a STAGE_ORDER=()
declare -A CAP=() PART=() KIND=() NEEDS=() PROVES=() VERDICT=() SECS=() LIMIT=() PREV=() SELECTED=()
RUNNING="" RUN_T0=0 CHILD="" FINISHED=0 INTERRUPTED="" STOPPED_IN=""

# def_stage <name> <part> <host|gpu> <budget s> "<needs...>" "<what it proves>"
def_stage() {
  STAGE_ORDER+=("$1")
  PART[$1]=$2 KIND[$1]=$3 CAP[$1]=$4 NEEDS[$1]=$5 PROVES[$1]=$6
}

now() { date +%s; }
elapsed() { echo $(($(now) - T0)); }
left() { echo $((DEADLINE - $(elapsed))); }
min_limit() {
  local m=$((CAP[$1] / 4))
  ((m < 3)) && m=3
  echo "$m"
}

# The first stage <name> needs that did not pass in this call, with its verdict.
unmet_need() {
  local d
  for d in ${NEEDS[$1]}; do
    [[ ${VERDICT[$d]:-} == ok ]] || {
      echo "$d (${VERDICT[$d]:-not run})"
      return
    }
  done
}

record() {
  VERDICT[$1]=$2 SECS[$1]=$3
  save_state
  write_report
}

skip_stage() {
  echo "== $1: skipped: $2"
  record "$1" "skipped: $2" 0
}

# Appends a stage's log to OUT/gpu_check.log: its first MiB and, when longer, its last 100 lines.
append_log() {
  local name=$1 log="$LOGDIR/$1.log" size
  {
    echo "===== $name: ${VERDICT[$name]:-$2} (${SECS[$name]:-$3} s) ====="
    size=$(stat -c %s "$log" 2>/dev/null || echo 0)
    head -c 1048576 "$log" 2>/dev/null
    if ((size > 1048576)); then
      echo
      echo "[... $size bytes in all; the last 100 lines:]"
      tail -n 100 "$log"
    fi
    echo
  } >>"$OUT/gpu_check.log"
}

# run_stage <name> <program> [args...]: prerequisites, deadline, timeout, log, verdict.
# Returns 0 when the stage passed.
run_stage() {
  local name=$1 need limit room
  shift
  need=$(unmet_need "$name")
  if [[ -n $need ]]; then
    skip_stage "$name" "needs $need"
    return 1
  fi
  room=$(($(left) - RESERVE))
  limit=${CAP[$name]}
  ((room < limit)) && limit=$room
  if ((limit < $(min_limit "$name"))); then
    skip_stage "$name" "deadline: ${room} s left (after the report's ${RESERVE} s), needs at least $(min_limit "$name") s of its ${CAP[$name]} s budget"
    return 1
  fi
  LIMIT[$name]=$limit RUNNING=$name RUN_T0=$(now)
  write_report
  echo "== $name (limit ${limit}s, $(left) s left)"
  timeout --kill-after=5 "$limit" "$@" >"$OUT/current_stage.log" 2>&1 </dev/null &
  CHILD=$!
  wait "$CHILD"
  local rc=$? dt=$(($(now) - RUN_T0)) v=ok
  CHILD="" RUNNING=""
  mv -f "$OUT/current_stage.log" "$LOGDIR/$name.log"
  case $rc in
    0) ;;
    124 | 137) v="TIMEOUT (${limit} s)" ;;
    77) v="SKIPPED BY THE TESTS (rc 77: they saw no GPU)" ;;
    *) v="FAILED (rc $rc)" ;;
  esac
  VERDICT[$name]=$v SECS[$name]=$dt
  append_log "$name"
  record "$name" "$v" "$dt"
  echo "   $v in ${dt}s"
  tail -n 3 "$LOGDIR/$name.log" | sed 's/^/   | /'
  [[ $v == ok ]]
}

# ---- state between the calls of one session (--part 2 reads it) ------------------
load_state() {
  [[ -f $STATE ]] || return 0
  local n v
  while IFS=$'\t' read -r n v; do [[ -n $n ]] && PREV[$n]=$v; done <"$STATE"
}
save_state() {
  local n tmp="$STATE.tmp"
  mkdir -p "$(dirname "$STATE")"
  {
    for n in "${STAGE_ORDER[@]}"; do
      if [[ -n ${VERDICT[$n]:-} ]]; then
        printf '%s\t%s\n' "$n" "${VERDICT[$n]}"
      elif [[ -n ${PREV[$n]:-} ]]; then
        printf '%s\t%s\n' "$n" "${PREV[$n]}"
      fi
    done
  } >"$tmp" && mv -f "$tmp" "$STATE"
}

# ---- the report ---------------------------------------------------------------------
status_line() {
  if [[ -n $INTERRUPTED ]]; then
    echo "**INTERRUPTED** ($INTERRUPTED) after $(elapsed) s${STOPPED_IN:+, during stage \`$STOPPED_IN\`}."
  elif ((FINISHED)); then
    echo "Finished in $(elapsed) s."
  elif [[ -n $RUNNING ]]; then
    echo "**Running \`$RUNNING\`** since +$((RUN_T0 - T0)) s (limit ${LIMIT[$RUNNING]} s). If this is the last" \
      "word, the call was killed during that stage: its output so far is in current_stage.log."
  else
    echo "Running (+$(elapsed) s)."
  fi
}

write_report() {
  local tmp="$OUT/report.md.tmp" n v t i=0
  {
    echo "# $TITLE"
    echo
    echo "$(status_line) Deadline ${DEADLINE} s (stages get what is left, ${RESERVE} s kept for this report)."
    echo
    declare -F report_header >/dev/null && report_header
    echo
    echo "| # | stage | budget | limit | result | time | what it proves |"
    echo "|---|---|---|---|---|---|---|"
    for n in "${STAGE_ORDER[@]}"; do
      [[ -n ${SELECTED[$n]:-} ]] || continue
      i=$((i + 1))
      v=${VERDICT[$n]:-}
      t="${SECS[$n]:-}"
      if [[ $n == "$RUNNING" ]]; then
        v="running"
        t="$(($(now) - RUN_T0))"
      elif [[ -z $v ]]; then
        v="pending"
      fi
      echo "| $i | $n | ${CAP[$n]} s | ${LIMIT[$n]:+${LIMIT[$n]} s} | $v | ${t:+$t s} | ${PROVES[$n]} |"
    done
    echo
    declare -F report_sections >/dev/null && report_sections
  } >"$tmp" 2>&1 && mv -f "$tmp" "$OUT/report.md"
}

on_exit() {
  local rc=$?
  trap - EXIT TERM INT
  if [[ -n $CHILD ]]; then
    kill -TERM "$CHILD" 2>/dev/null
    sleep 1
    kill -KILL "$CHILD" 2>/dev/null
  fi
  if [[ -n $RUNNING ]]; then
    local n=$RUNNING dt=$(($(now) - RUN_T0))
    cp -f "$OUT/current_stage.log" "$LOGDIR/$n.log" 2>/dev/null
    VERDICT[$n]="INTERRUPTED (${INTERRUPTED:-exit $rc}) after ${dt} s" SECS[$n]=$dt
    append_log "$n"
    rm -f "$OUT/current_stage.log"
    RUNNING="" STOPPED_IN=$n
  fi
  FINISHED=1
  save_state
  write_report
  exit "$rc"
}

install_traps() {
  trap on_exit EXIT
  trap 'INTERRUPTED=SIGTERM; exit 143' TERM
  trap 'INTERRUPTED=SIGINT; exit 130' INT
}

# Prints the budgets of each part and fails when one part's do not fit the deadline.
check_budgets() {
  local p n sum ok=0
  for p in 1 2; do
    sum=$RESERVE
    for n in "${STAGE_ORDER[@]}"; do
      [[ ${PART[$n]} == "$p" ]] || continue
      printf '  part %s  %-18s %4s s  (%s)\n' "$p" "$n" "${CAP[$n]}" "${KIND[$n]}"
      sum=$((sum + CAP[$n]))
    done
    if ((sum <= DEADLINE)); then
      echo "part $p: budgets + ${RESERVE} s for the report = ${sum} s <= deadline ${DEADLINE} s: fits"
    else
      echo "part $p: budgets + ${RESERVE} s for the report = ${sum} s > deadline ${DEADLINE} s: DOES NOT FIT"
      ok=1
    fi
  done
  return $ok
}
