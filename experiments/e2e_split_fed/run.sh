#!/usr/bin/env bash
# Split-federated LoRA against centralized, FedAvg without split and
# local-only on E2E NLG, scored by generation (BLEU, NIST, ROUGE-L) in the
# layout of SplitLoRA's table (issue 14, section 4). From the repository root:
#   experiments/e2e_split_fed/run.sh
# Needs ../shared and a built `cleave` (make build; CLEAVE=path to use
# another). JOBS=2 runs two runs at once (each on one thread). Runs and scores
# already finished are kept, so an interrupted study resumes, and SEEDS may
# grow (other changed settings need a fresh OUT). Writes runs/e2e_split_fed/
# and results.md here.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/e2e_split_fed}
JOBS=${JOBS:-1}
SEEDS=${SEEDS:-"1 2 3"}
EPOCHS=${EPOCHS:-3}                  # passes over the training data, every method
DATA_FRACTION=${DATA_FRACTION:-0.25} # share of e2e_valid trained on (seeded, per seed)
LIMIT=${LIMIT:-50}                   # distinct test MRs generated from and scored
MAX_TOKENS=${MAX_TOKENS:-64}         # generated tokens per MR at most
MODEL=../shared/models/stories260K.gguf
here=experiments/e2e_split_fed
mkdir -p "$OUT"
start=$(date +%s)

settings="EPOCHS=$EPOCHS
DATA_FRACTION=$DATA_FRACTION
LIMIT=$LIMIT
MAX_TOKENS=$MAX_TOKENS"
if [[ -f $OUT/settings && $(cat "$OUT/settings") != "$settings" ]]; then
  echo "$OUT was run with other settings ($OUT/settings): use a fresh OUT=... or remove it" >&2
  exit 1
fi
echo "$settings" > "$OUT/settings"
# e2e_valid with each MR's priceRange as the "price" field (the Dirichlet
# label) and the records of the first LIMIT test MRs.
python3 $here/summarize.py prepare "$OUT" "$LIMIT"

CONFIG=$here/config.yaml
RUN_ARGS=(--set data.train="$OUT/data/e2e_valid_priced.jsonl" --set data.eval="$OUT/data/e2e_test_head.jsonl"
          --set federation.data_fraction="$DATA_FRACTION")
# shellcheck source=experiments/simulate_queue.sh
source experiments/simulate_queue.sh
# score NAME ADAPTER: the same `cleave eval --generate` for every adapter,
# into $OUT/scores/NAME.log, skipped when done.
score() {
  local name=$1 adapter=$2 log=$OUT/scores/$1.log
  if [[ -f $log ]] && grep -q '^bleu: ' "$log"; then return 0; fi
  mkdir -p "$(dirname "$log")"
  if "$CLEAVE" eval --model "$MODEL" --quant int8 --threads 1 --adapter "$adapter" \
       --data "$OUT/data/e2e_test_head.jsonl" --generate --max-tokens "$MAX_TOKENS" \
       --out "$OUT/scores/$name.jsonl" > "$log.tmp" 2>&1; then
    mv "$log.tmp" "$log"
    echo "scored $name: $(grep '^bleu: ' "$log")"
  else
    echo "FAILED scoring $name: see $log.tmp" >&2
    return 1
  fi
}
# The methods, each its own run so that each has its own wall time, all over
# EPOCHS passes of the same data: one round per epoch (every site one local
# epoch per round), split_fed_4x with four rounds of a quarter epoch each
# (each round's quarter a fresh seeded draw of the site's data), and
# split_fed_seq with the sites one after another.
one=(--set "federation.rounds=$EPOCHS" --set federation.local_epochs=1 --set "federation.eval_every=$EPOCHS")
quarter=(--set "federation.rounds=$((4 * EPOCHS))" --set federation.local_epochs=0.25 --set "federation.eval_every=$((4 * EPOCHS))")
# split_fed_seq: the 5 sites one after another (sampling passes, one site per
# round, each from the adapters the one before it left): 5 rounds an epoch.
sequential=(--set "federation.rounds=$((5 * EPOCHS))" --set federation.local_epochs=1 --set "federation.eval_every=$((5 * EPOCHS))"
            --set federation.clients_per_round=1 --set federation.sampling=passes)
declare -A METHOD=(
  [centralized]="--set federation.run_fleet=false --set federation.baselines=[centralized] ${one[*]}"
  [split_fed]="--set federation.mode=split ${one[*]}"
  [split_fed_4x]="--set federation.mode=split ${quarter[*]}"
  [split_fed_seq]="--set federation.mode=split ${sequential[*]}"
  [fedavg_nosplit]="--set federation.mode=nosplit ${one[*]}"
  [local_only]="--set federation.run_fleet=false --set federation.baselines=[local_only] ${one[*]}"
)
for seed in $SEEDS; do
  for method in centralized split_fed split_fed_4x split_fed_seq fedavg_nosplit local_only; do
    # shellcheck disable=SC2086
    enqueue run "seed$seed/$method" ${METHOD[$method]} --set train.seed=$seed
  done
done
drain

for seed in $SEEDS; do
  enqueue score "seed$seed/centralized" "$OUT/seed$seed/centralized/baselines/centralized/adapter.gguf"
  enqueue score "seed$seed/split_fed" "$OUT/seed$seed/split_fed/adapter.gguf"
  enqueue score "seed$seed/split_fed_4x" "$OUT/seed$seed/split_fed_4x/adapter.gguf"
  enqueue score "seed$seed/split_fed_seq" "$OUT/seed$seed/split_fed_seq/adapter.gguf"
  enqueue score "seed$seed/fedavg_nosplit" "$OUT/seed$seed/fedavg_nosplit/adapter.gguf"
  for site in "$OUT/seed$seed/local_only/baselines/local_only/"*.gguf; do
    enqueue score "seed$seed/local_only_$(basename "$site" .gguf)" "$site"
  done
done
drain

# Wall time of every invocation, so that a resumed study reports its total.
echo "$(( $(date +%s) - start ))" >> "$OUT/invocation_seconds"
python3 $here/summarize.py report "$OUT" "$here" "$CLEAVE" "$(awk '{s += $1} END {print s}' "$OUT/invocation_seconds")" "$JOBS"
echo "results: $here/results.md"
