#!/usr/bin/env bash
# What the activation protection costs in accuracy (issue 12): the MedQuAD
# split-federated fleet of experiments/medquad_split_fed (11 sites, u_shaped,
# 6 rounds x 8 local steps, stories260K int8) at cut layers 1, 2 and 3 (the
# u_shaped cuts stories260K's 5 blocks allow with the top block at the
# sites), with split.activation_clip at the audit's median token norm at that
# cut and split.activation_noise 0.1, 0.3 and 1 x clip, beside the
# unprotected fleet, all without baselines. Writes cost.md here.
#   experiments/activation_privacy/cost.sh      (from the repository root; needs ../shared)
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/activation_cost}
here=experiments/activation_privacy
config=experiments/medquad_split_fed/config.yaml
declare -A clip_at=([1]=3.61 [2]=5.22 [3]=7.09)   # results.md: the median token norm at each cut
mkdir -p "$OUT"
rows=()
for cut in ${CUTS:-1 2 3}; do
  for noise in ${NOISES:-off 0.1 0.3 1}; do
    args=(--set "federation.baselines=[]" --set "federation.cut_layer=$cut")
    if [[ $noise != off ]]; then
      args+=(--set "federation.activation_clip=${clip_at[$cut]}" --set "federation.activation_noise=$noise")
    fi
    run="$OUT/cut$cut-$noise"
    start=$(date +%s)
    "$CLEAVE" simulate --config "$config" --out "$run" "${args[@]}" > "$run.log" 2>&1 || { tail -20 "$run.log"; exit 1; }
    seconds=$(( $(date +%s) - start ))
    final=$(awk -F, 'END { printf "%.2f", $5 }' "$run/metrics.csv")
    per_site=$(awk -F, 'END { printf "%.2f", $6 }' "$run/metrics.csv")
    label=$([[ $noise == off ]] && echo "none" || echo "clip ${clip_at[$cut]}, noise $noise x clip")
    rows+=("| $cut | $label | $final | $per_site | $seconds s |")
  done
done
{
  echo "<!-- written by $here/cost.sh; do not edit by hand -->"
  echo
  echo "Command: \`$here/cost.sh\` (fleet: [../medquad_split_fed/config.yaml](../medquad_split_fed/config.yaml), no baselines), on $(nproc) cores ($(uname -m), $(date -u +%Y-%m-%d))."
  echo
  echo "| cut | protection | final held-out perplexity | mean per-site held-out perplexity | wall |"
  echo "|---:|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > "$here/cost.md"
cat "$here/cost.md"
