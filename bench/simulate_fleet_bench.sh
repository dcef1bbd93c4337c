#!/usr/bin/env bash
# Simulated fleets (issue 4): wall time and peak RSS of `cleave simulate` on
# the built-in fleet (generated notes, the demo's random dim-128 model) with
# 10, 100 and 1,000 registered sites and a fixed number sampled per round,
# each run in its own process so /usr/bin/time reports its own peak RSS.
# Usage: bench/simulate_fleet_bench.sh [CLEAVE_BINARY]   (default build/bin/cleave)
# Prints a markdown table (also bench-out/simulate_fleet.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cleave=${1:-build/bin/cleave}
out=bench-out/simulate_fleet
rounds=${ROUNDS:-3}
mkdir -p "$out"
rows=${ROWS:-"10:10 100:10 1000:10 1000:20"}
table="$out.md"
{
  echo "| registered | per round | rounds | wall s | s / round | peak RSS MiB | site instances made | max alive at once |"
  echo "|---|---|---|---|---|---|---|---|"
} > "$table"
for row in $rows; do
  registered=${row%%:*}
  per_round=${row##*:}
  dir="$out/n$registered-k$per_round"
  rm -rf "$dir"
  /usr/bin/time -v -o "$dir.time" "$cleave" simulate --out "$dir" \
    --set federation.clients="$registered" --set federation.clients_per_round="$per_round" \
    --set federation.rounds="$rounds" --set federation.partition=iid \
    --set federation.client_eval_fraction=0 --set federation.client_eval_batches=1 \
    --set train.steps=2 --set data.batch_size=4 --set data.mode=padding --set data.eval_fraction=0.05 --set data.eval_batches=4 \
    > "$dir.log" 2>&1
  wall=$(awk -F, 'NR>1 {t=$20} END {printf "%.1f", t}' "$dir/metrics.csv")
  per=$(awk -v w="$wall" -v r="$rounds" 'BEGIN {printf "%.2f", w / r}')
  rss=$(awk -F: '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$dir.time")
  made=$(sed -n 's/.*): \([0-9]*\) made over the run, at most \([0-9]*\) alive.*/\1/p' "$dir/summary.md")
  alive=$(sed -n 's/.*): \([0-9]*\) made over the run, at most \([0-9]*\) alive.*/\2/p' "$dir/summary.md")
  echo "| $registered | $per_round | $rounds | $wall | $per | $rss | $made | $alive |" >> "$table"
done
cat "$table"
