# shellcheck shell=bash
# Sourced by the experiments' run.sh: one resumable `cleave simulate` per run
# and a queue that runs them JOBS at a time. The caller sets CLEAVE, CONFIG,
# OUT and JOBS, and may set RUN_ARGS (an array added to every run).

# run NAME --set ... : one `cleave simulate` into $OUT/NAME, skipped when done
# (its summary.md exists); its wall time goes to $OUT/NAME/wall_seconds.
run() {
  local name=$1; shift
  local dir=$OUT/$name
  if [[ -f $dir/summary.md ]]; then return 0; fi
  mkdir -p "$dir"
  local t0; t0=$(date +%s)
  if "$CLEAVE" simulate --config "$CONFIG" --out "$dir" "${RUN_ARGS[@]}" "$@" > "$dir/console.log" 2>&1; then
    echo "$(( $(date +%s) - t0 ))" > "$dir/wall_seconds"
    echo "done $name ($(cat "$dir/wall_seconds") s)"
  else
    echo "FAILED $name: see $dir/console.log" >&2
    return 1
  fi
}

# enqueue COMMAND ARGS... ; drain runs the queued commands JOBS at a time and
# fails if any failed.
queue=()
enqueue() { queue+=("$(printf '%q ' "$@")"); }
drain() {
  local running=0 status=0
  for cmd in "${queue[@]}"; do
    eval "$cmd" &
    running=$((running + 1))
    if (( running >= JOBS )); then wait -n || status=1; running=$((running - 1)); fi
  done
  while (( running > 0 )); do wait -n || status=1; running=$((running - 1)); done
  queue=()
  return $status
}
