#!/usr/bin/env bash
# Split federated (u_shaped, and vanilla beside it) vs centralized vs
# local-only vs FedAvg-without-split on MedQuAD (11 sites, one per source
# file) with stories260K, in one command:
#   experiments/medquad_split_fed/run.sh            (from the repository root)
# Needs ../shared (the model and the data) and a built `cleave` (make build).
# Writes the run to runs/medquad_split_fed/ and copies its summary and plot
# here as results.md and plot.png. About 15 minutes on 2 idle cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/medquad_split_fed}
here=experiments/medquad_split_fed
command=("$CLEAVE" simulate --config "$here/config.yaml" --out "$OUT" "$@")
mkdir -p "$OUT"
start=$(date +%s)
"${command[@]}" | tee "$OUT/console.log"
seconds=$(( $(date +%s) - start ))
# The same fleet in vanilla mode (its labels go to the split server), without
# the baselines, which do not depend on the split mode.
vanilla=("$CLEAVE" simulate --config "$here/config.yaml" --out "$OUT/vanilla" --set federation.split_mode=vanilla
         --set "federation.baselines=[]" "$@")
start=$(date +%s)
"${vanilla[@]}" | tee "$OUT/vanilla-console.log"
vanilla_seconds=$(( $(date +%s) - start ))
{
  echo "<!-- written by $here/run.sh; do not edit by hand -->"
  echo
  echo "Command: \`${command[*]}\` (config: [config.yaml](config.yaml)), $seconds s wall on $(nproc) cores"
  echo "($(uname -m), $(date -u +%Y-%m-%d))."
  echo
  cat "$OUT/summary.md"
  echo
  echo "## The same fleet in vanilla mode"
  echo
  echo "Command: \`${vanilla[*]}\`, $vanilla_seconds s wall."
  echo
  sed -n '/^| run |/,/^$/p' "$OUT/vanilla/summary.md"
  grep -E "bytes by channel|Label bytes" "$OUT/vanilla/summary.md"
} > "$here/results.md"
cp "$OUT/plot.png" "$here/plot.png"
echo "results: $here/results.md, $here/plot.png"
