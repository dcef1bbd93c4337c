#!/usr/bin/env bash
# Simulated fleets across processes (issue 18, section 3): the wall time per
# round of `cleave simulate` on the built-in fleet with 1 process and with
# `mpirun -np K` (K = 2, 4 by default), K taking turns, REPEATS times each,
# and whether each K-rank run's adapters equal the 1-process run's.
# Usage: bench/simulate_ranks_bench.sh [CLEAVE_BINARY]   (default build/bin/cleave)
# Prints a markdown table (also bench-out/simulate_ranks.md). As root, Open
# MPI needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.
set -euo pipefail
cd "$(dirname "$0")/.."
cleave=${1:-build/bin/cleave}
out=bench-out/simulate_ranks
ranks_list=${RANKS:-"1 2 4"}
repeats=${REPEATS:-2}
rounds=${ROUNDS:-4}
mkdir -p "$out"
settings=(--set federation.rounds="$rounds" --set federation.clients_per_round=6 --set federation.workers=1)
mean_round_seconds() {   # the mean of metrics.csv's round_seconds column
  python3 - "$1" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{sum(float(r['round_seconds']) for r in rows) / len(rows):.2f}")
PY
}
declare -A seconds
for repeat in $(seq 1 "$repeats"); do
  for k in $ranks_list; do
    dir="$out/np$k-$repeat"
    rm -rf "$dir"
    if [[ $k == 1 ]]; then
      "$cleave" simulate --out "$dir" "${settings[@]}" > "$dir.log" 2>&1
    else
      mpirun -np "$k" --oversubscribe "$cleave" simulate --out "$dir" "${settings[@]}" > "$dir.log" 2>&1
    fi
    seconds[$k]="${seconds[$k]:-} $(mean_round_seconds "$dir/metrics.csv")"
    if [[ $k != 1 ]] && ! cmp -s "$out/np1-$repeat/adapter.gguf" "$dir/adapter.gguf"; then
      echo "np $k: adapters differ from the 1-process run" >&2
    fi
  done
done
{
  echo "| processes | s / round (each repeat) | adapters equal the 1-process run's |"
  echo "|---|---|---|"
  for k in $ranks_list; do
    same=yes
    for repeat in $(seq 1 "$repeats"); do
      cmp -s "$out/np1-$repeat/adapter.gguf" "$out/np$k-$repeat/adapter.gguf" || same=no
    done
    echo "| $k |${seconds[$k]} | $same |"
  done
} | tee "$out.md"
