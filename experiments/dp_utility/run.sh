#!/usr/bin/env bash
# DP-FedAvg utility at epsilon = inf (clipping and sampling only), 8, 3, 1 on
# MedQuAD over 1,000 simulated sites, in one command:
#   experiments/dp_utility/run.sh            (from the repository root)
# Needs ../shared and a built `cleave`. Writes runs/dp_utility/<eps>/,
# results.md here (final held-out perplexity and epsilon per round) and
# results.png (every run's held-out perplexity per round in one chart).
# The same fleet under secure aggregation with distributed noise:
#   RESULTS=experiments/dp_utility/results_secure.md OUT=runs/dp_utility_secure PLOT_TITLE="secagg + distributed noise" \
#     COMMAND="..." experiments/dp_utility/run.sh --set federation.secure_aggregation.enabled=true --set federation.dp.noise=distributed
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/dp_utility}
here=experiments/dp_utility
RESULTS=${RESULTS:-$here/results.md}
mkdir -p "$(dirname "$OUT")"
declare -A noise=([inf]="--set federation.dp.noise_multiplier=1e-6")
for eps in 8 3 1; do noise[$eps]="--set federation.dp.target_epsilon=$eps"; done
rows=()
for eps in ${EPSILONS:-inf 8 3 1}; do
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$CLEAVE" simulate --config "$here/config.yaml" --out "$OUT/$eps" ${noise[$eps]} "$@" > "$OUT-$eps.log" 2>&1 ||
    { tail -20 "$OUT-$eps.log"; exit 1; }
  seconds=$(( $(date +%s) - start ))
  csv="$OUT/$eps/metrics.csv"
  # Columns: round, ..., eval_perplexity (5th), ..., dp_epsilon (last); every 5th round.
  per_round=$(awk -F, 'NR > 1 && $1 % 5 == 0 { printf "%s%.2f", (n++ ? ", " : ""), $5 }' "$csv")
  eps_round=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next } $1 % 5 == 0 { e = $col["dp_epsilon"]; printf "%s%s", (n++ ? ", " : ""), (e + 0 > 1e6 ? "inf" : sprintf("%.2f", e)) }' "$csv")
  final=$(awk -F, 'END { printf "%.2f", $5 }' "$csv")
  z=$(grep -o 'noise multiplier [0-9.e+-]*' "$OUT/$eps/fleet.log" | head -1 | awk '{print $3}' || true)
  rows+=("| $eps | $z | $final | $per_round | $eps_round | $seconds s |")
done
{
  echo "<!-- written by $here/run.sh; do not edit by hand -->"
  echo
  echo "Command: \`${COMMAND:-$here/run.sh}\` (config: [config.yaml](config.yaml)), on $(nproc) cores ($(uname -m), $(date -u +%Y-%m-%d))."
  echo
  echo "| target epsilon | noise multiplier | final held-out perplexity | held-out perplexity after rounds 5, 10, ..., 30 | epsilon after rounds 5, 10, ..., 30 (delta 1e-5) | wall |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > "$RESULTS"
cat "$RESULTS"
# One chart of the runs' held-out perplexity per round (log scale), next to the results.
plot_runs=()
for eps in ${EPSILONS:-inf 8 3 1}; do plot_runs+=(--run "epsilon $eps=$OUT/$eps"); done
"$CLEAVE" plot "${plot_runs[@]}" --column eval_perplexity --log-y true \
  --title "held-out perplexity (log10), ${PLOT_TITLE:-central noise}" --out "${RESULTS%.md}.png"
