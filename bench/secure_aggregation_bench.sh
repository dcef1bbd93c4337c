#!/usr/bin/env bash
# Secure aggregation's cost in `cleave simulate` (issue 13): bytes and wall
# time per round with and without federation.secure_aggregation, at 10, 50
# and 100 sites per round out of 1,000 registered, on the built-in fleet
# (generated notes, the demo's random dim-128 model; no downloads), u_shaped
# split at cut 1 over the in-process transport with TLS, 1 local step per
# round so the protocol's share of the round shows. Each configuration runs
# in its own process; the figures are means over the rounds after the first.
# Usage: bench/secure_aggregation_bench.sh [CLEAVE_BINARY]   (default build/bin/cleave)
# Prints a markdown table (also bench-out/secure_aggregation.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cleave=${1:-build/bin/cleave}
out=bench-out/secure_aggregation
rounds=${ROUNDS:-3}
per_rounds=${PER_ROUND:-"10 50 100"}
mkdir -p "$out"
table="$out.md"
{
  echo "| per round | secure | adapters down | adapters up | control | aggregation bytes | x | all bytes (with split) | s / round | x |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} > "$table"
# metrics.csv columns: 11 adapters_up_bytes, 12 adapters_down_bytes, 13 control_bytes (registration, polls,
# acks, secure aggregation's keys and shares; also the split server's few control frames), 15 round_bytes,
# 20 round_seconds. "aggregation bytes" = adapters down + up + control: what Bonawitz et al.'s 1.73-1.98x
# expansion compares.
mean() { awk -F, -v c="$1" 'NR>2 {s+=$c; n++} END {printf "%.0f", s / n}' "$2"; }
meanf() { awk -F, -v c="$1" 'NR>2 {s+=$c; n++} END {printf "%.2f", s / n}' "$2"; }
for k in $per_rounds; do
  for secure in false true; do
    dir="$out/k$k-$secure"
    rm -rf "$dir"
    "$cleave" simulate --out "$dir" \
      --set federation.clients=1000 --set federation.clients_per_round="$k" \
      --set federation.rounds="$rounds" --set federation.partition=iid --set federation.workers=2 \
      --set federation.client_eval_fraction=0 --set federation.client_eval_batches=1 \
      --set federation.secure_aggregation.enabled="$secure" \
      --set train.steps=1 --set data.batch_size=2 --set data.mode=padding --set data.eval_fraction=0.05 \
      --set data.eval_batches=2 > "$dir.log" 2>&1
    csv="$dir/metrics.csv"
    all=$(mean 15 "$csv"); up=$(mean 11 "$csv"); down=$(mean 12 "$csv"); control=$(mean 13 "$csv")
    secs=$(meanf 20 "$csv")
    agg=$((up + down + control))
    if [ "$secure" = false ]; then
      plain_agg=$agg; plain_secs=$secs
      echo "| $k | no | $down | $up | $control | $agg | 1 | $all | $secs | 1 |" >> "$table"
    else
      bx=$(awk -v a="$agg" -v b="$plain_agg" 'BEGIN {printf "%.2f", a / b}')
      sx=$(awk -v a="$secs" -v b="$plain_secs" 'BEGIN {printf "%.2f", a / b}')
      echo "| $k | yes | $down | $up | $control | $agg | $bx | $all | $secs | $sx |" >> "$table"
    fi
  done
done
cat "$table"
