#!/usr/bin/env bash
# Is u_shaped slower to learn than vanilla, and why does SFL-V2 not learn with
# several sites per round? The built-in fleet (`cleave simulate` without
# --config: 6 sites, Dirichlet by condition, 8 rounds of 10 local steps, cut 1,
# random 4-block model) over 5 seeds, for u_shaped and vanilla, SFL-V1 at 1
# and 3 sites per round and SFL-V2 at 3, at the built-in learning rate 0.01
# and at 0.003. Writes results.md here (final held-out perplexity per seed,
# mean and standard deviation). About 10 minutes on 2 cores.
#   experiments/split_modes_seeds/run.sh        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/split_modes_seeds}
SEEDS=${SEEDS:-1 2 3 4 5}
here=experiments/split_modes_seeds
mkdir -p "$OUT"
rows=()
start_all=$(date +%s)
for variant_cpr in "sfl_v1 1" "sfl_v1 3" "sfl_v2 3"; do
  read -r variant cpr <<< "$variant_cpr"
  for lr in 0.01 0.003; do
    for mode in u_shaped vanilla; do
      finals=()
      for seed in $SEEDS; do
        run="$OUT/$variant-$cpr-$lr-$mode-$seed"
        "$CLEAVE" simulate --out "$run" --set federation.variant=$variant --set federation.clients_per_round=$cpr \
          --set train.lr=$lr --set federation.split_mode=$mode --set train.seed=$seed \
          --set federation.progress=false > "$run.log" 2>&1 || { tail -20 "$run.log"; exit 1; }
        finals+=("$(awk -F, 'END { printf "%.2f", $5 }' "$run/metrics.csv")")
      done
      stats=$(printf '%s\n' "${finals[@]}" | awk '{ s += $1; q += $1 * $1; n++ }
        END { m = s / n; v = n > 1 ? (q - n * m * m) / (n - 1) : 0; printf "%.2f | %.2f", m, sqrt(v < 0 ? 0 : v) }')
      rows+=("| $variant | $cpr | $lr | $mode | $(IFS=' '; echo "${finals[*]}" | sed 's/ / \/ /g') | $stats |")
      echo "${rows[-1]}"
    done
  done
done
minutes=$(( ($(date +%s) - start_all + 59) / 60 ))
{
  echo "# u_shaped and vanilla, SFL-V1 and SFL-V2, over seeds (built-in fleet)"
  echo
  echo "Command: \`experiments/split_modes_seeds/run.sh\` (about $minutes minutes on 2 cores)."
  echo "Final held-out perplexity after 8 rounds of 10 local steps, 6 sites, seeds $SEEDS (train.seed:"
  echo "partition, adapters, batches, sampling)."
  echo
  echo "| variant | sites per round | lr | mode | final perplexity per seed | mean | std |"
  echo "|---|---:|---:|---|---|---:|---:|"
  printf '%s\n' "${rows[@]}"
} > "$here/results.md"
echo "wrote $here/results.md"
