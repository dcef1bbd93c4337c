#!/usr/bin/env bash
# DP-FedAvg utility at epsilon = inf (clipping and sampling only), 8, 3, 1 on
# MedQuAD over 1,000 simulated sites, in one command:
#   experiments/dp_utility/run.sh            (from the repository root)
# Needs ../shared and a built `cleave`. Writes runs/dp_utility/<eps>/ and
# results.md here (final held-out perplexity and epsilon per round).
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/dp_utility}
here=experiments/dp_utility
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
  eps_round=$(awk -F, 'NR > 1 && $1 % 5 == 0 { printf "%s%s", (n++ ? ", " : ""), ($NF + 0 > 1e6 ? "inf" : sprintf("%.2f", $NF)) }' "$csv")
  final=$(awk -F, 'END { printf "%.2f", $5 }' "$csv")
  z=$(grep -o 'noise multiplier [0-9.e+-]*' "$OUT/$eps/fleet.log" | head -1 | awk '{print $3}' || true)
  rows+=("| $eps | $z | $final | $per_round | $eps_round | $seconds s |")
done
{
  echo "<!-- written by $here/run.sh; do not edit by hand -->"
  echo
  echo "Command: \`$here/run.sh\` (config: [config.yaml](config.yaml)), on $(nproc) cores ($(uname -m), $(date -u +%Y-%m-%d))."
  echo
  echo "| target epsilon | noise multiplier | final held-out perplexity | held-out perplexity after rounds 5, 10, ..., 30 | epsilon after rounds 5, 10, ..., 30 (delta 1e-5) | wall |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > "$here/results.md"
cat "$here/results.md"
