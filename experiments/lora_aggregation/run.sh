#!/usr/bin/env bash
# Does LoRA-aware aggregation learn better than averaging A and B on their own?
# The built-in fleet (`cleave simulate` without --config: 6 sites, Dirichlet
# by condition, 8 rounds of 10 local steps, 3 sites per round, u_shaped
# SFL-V1 at cut 1, random 4-block model, lora rank 8) over 3 seeds, for
# lora.aggregation separate, ffa and product at the built-in learning rate
# 0.01, and ffa at 0.02 and 0.03 (FFA-LoRA trains half the parameters; its
# paper raises the learning rate); then heterogeneous ranks under product:
# sites at ranks 8/4/2 in turn against every site at 8 (the rows above) and
# every site at 2 (lora.rank 2). Writes results.md here: final held-out
# perplexity per seed, mean and standard deviation, and under product the
# mean truncation error of the aggregator. About 8 minutes on 2 cores.
#   experiments/lora_aggregation/run.sh        (from the repository root)
#   ROUNDS=32 SETTINGS=ranks RESULTS=experiments/lora_aggregation/results_ranks_32.md \
#     OUT=runs/lora_aggregation_ranks_32 experiments/lora_aggregation/run.sh
#                                                  (only the three rank rows, 32 rounds)
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/lora_aggregation}
SEEDS=${SEEDS:-1 2 3}
ROUNDS=${ROUNDS:-8}
SETTINGS=${SETTINGS:-all}   # all | ranks (separate rank 8, product 8/4/2, product rank 2)
here=experiments/lora_aggregation
RESULTS=${RESULTS:-$here/results.md}
mkdir -p "$OUT"
rows=()
start_all=$(date +%s)
settings=("separate 0.01" "ffa 0.01" "product 0.01" "ffa 0.02" "ffa 0.03"
          "product 0.01 federation.site_ranks=[8,4,2]" "product 0.01 lora.rank=2 lora.alpha=4")
[[ $SETTINGS == ranks ]] && settings=("product 0.01" "product 0.01 federation.site_ranks=[8,4,2]"
                                      "product 0.01 lora.rank=2 lora.alpha=4")
for setting in "${settings[@]}"; do
  read -r aggregation lr extra <<< "$setting"
  extra_sets=()
  for kv in $extra; do extra_sets+=(--set "$kv"); done
  label=${extra:-"-"}
  finals=()
  errors=()
  seconds=0
  for seed in $SEEDS; do
    run="$OUT/$aggregation-$lr-${extra//[^a-z0-9.]/_}-$seed"
    started=$(date +%s)
    "$CLEAVE" simulate --out "$run" --set lora.aggregation=$aggregation --set train.lr=$lr --set train.seed=$seed \
      --set federation.rounds=$ROUNDS "${extra_sets[@]}" \
      --set federation.progress=false > "$run.log" 2>&1 || { tail -20 "$run.log"; exit 1; }
    seconds=$(( seconds + $(date +%s) - started ))
    finals+=("$(awk -F, 'END { printf "%.2f", $5 }' "$run/metrics.csv")")
    # the last column, lora_truncation_error (empty unless product), over the rounds
    errors+=("$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next } (e = $col["lora_truncation_error"]) != "" { s += e; n++ } END { if (n) printf "%.3f", s / n; else printf "-" }' "$run/metrics.csv")")
  done
  stats=$(printf '%s\n' "${finals[@]}" | awk '{ s += $1; q += $1 * $1; n++ }
    END { m = s / n; v = n > 1 ? (q - n * m * m) / (n - 1) : 0; printf "%.2f | %.2f", m, sqrt(v < 0 ? 0 : v) }')
  rows+=("| $aggregation | $lr | $label | $(IFS=' '; echo "${finals[*]}" | sed 's/ / \/ /g') | $stats | $(IFS=' '; echo "${errors[*]}" | sed 's/ / \/ /g') | $seconds |")
  echo "${rows[-1]}"
done
minutes=$(( ($(date +%s) - start_all + 59) / 60 ))
{
  echo "# LoRA-aware aggregation on the built-in fleet"
  echo
  echo "Command: \`ROUNDS=$ROUNDS SETTINGS=$SETTINGS experiments/lora_aggregation/run.sh\` (about $minutes minutes on 2 cores, $(date -u +%Y-%m-%d))."
  echo "Final held-out perplexity after $ROUNDS rounds of 10 local steps, 6 sites (3 per round), seeds $SEEDS (train.seed:"
  echo "partition, adapters, batches, sampling). Truncation error: the aggregator's ||M - BA||_F / ||M||_F"
  echo "per round (lora::product_mean), mean over the rounds of each seed."
  echo
  echo "| lora.aggregation | lr | other settings | final perplexity per seed | mean | std | truncation error per seed | seconds (all seeds) |"
  echo "|---|---:|---|---|---:|---:|---|---:|"
  printf '%s\n' "${rows[@]}"
} > "$RESULTS"
echo "wrote $RESULTS"
