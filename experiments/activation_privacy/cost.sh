#!/usr/bin/env bash
# What the activation protection costs in accuracy (issue 12): the MedQuAD
# split-federated fleet of experiments/medquad_split_fed (11 sites, u_shaped,
# cut 1, 6 rounds x 8 local steps, stories260K int8) with
# split.activation_clip at the audit's median token norm at cut 1 (3.61) and
# split.activation_noise 0.1, 0.3 and 1 x clip, beside the unprotected
# fleet, all without baselines. Writes cost.md here.
#   experiments/activation_privacy/cost.sh      (from the repository root; needs ../shared)
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/activation_cost}
here=experiments/activation_privacy
config=experiments/medquad_split_fed/config.yaml
clip=3.61
rows=()
for noise in ${NOISES:-off 0.1 0.3 1}; do
  args=(--set "federation.baselines=[]")
  if [[ $noise != off ]]; then
    args+=(--set "federation.activation_clip=$clip" --set "federation.activation_noise=$noise")
  fi
  start=$(date +%s)
  "$CLEAVE" simulate --config "$config" --out "$OUT/$noise" "${args[@]}" > "$OUT-$noise.log" 2>&1 ||
    { tail -20 "$OUT-$noise.log"; exit 1; }
  seconds=$(( $(date +%s) - start ))
  final=$(awk -F, 'END { printf "%.2f", $5 }' "$OUT/$noise/metrics.csv")
  per_site=$(awk -F, 'END { printf "%.2f", $6 }' "$OUT/$noise/metrics.csv")
  label=$([[ $noise == off ]] && echo "none" || echo "clip $clip, noise $noise x clip")
  rows+=("| $label | $final | $per_site | $seconds s |")
done
{
  echo "<!-- written by $here/cost.sh; do not edit by hand -->"
  echo
  echo "Command: \`$here/cost.sh\` (fleet: [../medquad_split_fed/config.yaml](../medquad_split_fed/config.yaml), no baselines), on $(nproc) cores ($(uname -m), $(date -u +%Y-%m-%d))."
  echo
  echo "| protection at cut 1 | final held-out perplexity | mean per-site held-out perplexity | wall |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > "$here/cost.md"
cat "$here/cost.md"
