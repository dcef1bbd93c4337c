#!/usr/bin/env bash
# Split-federated vs centralized, FedAvg without split and local-only on
# MedQuAD (11 natural sites, 1% of each file) at equal data and to
# convergence, three seeds, each method's learning rate tuned on the
# validation set (never on the test set). From the repository root:
#   experiments/medquad_equal_epochs/run.sh
# Needs ../shared and a built `cleave` (make build). JOBS=2 runs two runs at
# once (each on one thread). Runs already finished (their summary.md exists)
# are kept, so an interrupted study resumes. Writes runs/medquad_equal_epochs/
# and results.md, curves_tokens.png and curves_bytes.png here.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/medquad_equal_epochs}
JOBS=${JOBS:-1}
SEEDS=${SEEDS:-"1 2 3"}
GRID=${GRID:-"0.002 0.005 0.01 0.02"}         # client learning rates tried per method
SERVER_GRID=${SERVER_GRID:-"0.003 0.01 0.03 0.1"}   # FedAdam's server learning rate (eta)
TAU_GRID=${TAU_GRID:-"0.001 0.01"}                  # and its adaptivity (tau), every pair tried
TUNE_ROUNDS=${TUNE_ROUNDS:-3}
here=experiments/medquad_equal_epochs
mkdir -p "$OUT"

CONFIG=$here/config.yaml
RUN_ARGS=()
# shellcheck source=experiments/simulate_queue.sh
source experiments/simulate_queue.sh

# The methods: name and the settings that make it.
declare -A METHOD=(
  [sfl_v1]="--set federation.variant=sfl_v1"
  [sfl_v1_vanilla]="--set federation.variant=sfl_v1 --set federation.split_mode=vanilla"
  [sfl_v2]="--set federation.variant=sfl_v2"
  [fedavg_nosplit]="--set federation.mode=nosplit"
  [fedadam]="--set federation.variant=sfl_v1 --set federation.strategy=fedadam"
  [centralized]="--set federation.run_fleet=false --set federation.baselines=[centralized,local_only]"
)

# 1. Tuning on seed 1's validation set, TUNE_ROUNDS epochs, no early stop.
tune=(--set federation.rounds=$TUNE_ROUNDS --set federation.stop_patience=0 --set train.seed=1)
for method in sfl_v1 sfl_v2 fedavg_nosplit centralized; do
  settings=${METHOD[$method]}
  # Tuning centralized needs no local-only beside it.
  [[ $method == centralized ]] && settings="--set federation.run_fleet=false --set federation.baselines=[centralized]"
  for lr in $GRID; do
    # shellcheck disable=SC2086
    enqueue run "tune/$method/lr$lr" $settings "${tune[@]}" --set train.lr=$lr
  done
done
drain
eval "$(python3 $here/summarize.py best "$OUT" client)"   # sets LR_<method>
for eta in $SERVER_GRID; do
  for tau in $TAU_GRID; do
    # shellcheck disable=SC2086
    enqueue run "tune/fedadam/server_lr${eta}_tau$tau" ${METHOD[fedadam]} "${tune[@]}" --set train.lr=$LR_sfl_v1 \
      --set federation.server_lr=$eta --set federation.server_tau=$tau
  done
done
drain
eval "$(python3 $here/summarize.py best "$OUT" server)"   # sets SERVER_LR_fedadam and SERVER_TAU_fedadam
echo "tuned: sfl_v1 $LR_sfl_v1, sfl_v2 $LR_sfl_v2, fedavg_nosplit $LR_fedavg_nosplit, centralized $LR_centralized," \
     "fedadam server_lr $SERVER_LR_fedadam server_tau $SERVER_TAU_fedadam"

# 2. Every method to convergence, and centralized / local-only also at fixed
#    budgets of 1 and 3 epochs (their one learning-rate schedule then ends
#    there; a fleet's round k is already k epochs, each round its own schedule).
declare -A LR=([sfl_v1]=$LR_sfl_v1 [sfl_v1_vanilla]=$LR_sfl_v1 [sfl_v2]=$LR_sfl_v2
               [fedavg_nosplit]=$LR_fedavg_nosplit [fedadam]=$LR_sfl_v1 [centralized]=$LR_centralized)
for seed in $SEEDS; do
  for method in centralized sfl_v1 sfl_v2 fedavg_nosplit fedadam sfl_v1_vanilla; do
    extra=()
    [[ $method == fedadam ]] && extra=(--set federation.server_lr=$SERVER_LR_fedadam
                                       --set federation.server_tau=$SERVER_TAU_fedadam)
    # shellcheck disable=SC2086
    enqueue run "seed$seed/$method" ${METHOD[$method]} --set train.seed=$seed --set train.lr=${LR[$method]} "${extra[@]}"
  done
  for epochs in 1 3; do
    # shellcheck disable=SC2086
    enqueue run "seed$seed/centralized_${epochs}epochs" ${METHOD[centralized]} --set train.seed=$seed \
      --set train.lr=$LR_centralized --set federation.rounds=$epochs --set federation.stop_patience=0
  done
done
drain

# 3. Beyond the cap: the averaged methods that hit it (SFL-V1 and FedAvg
#    without split) again with LONG_CAP epochs at most, the same rule to stop.
#    A fleet's round is its own schedule, so their first 12 epochs are the
#    capped runs'; centralized converged before the cap and is not rerun.
LONG_CAP=${LONG_CAP:-24}
for seed in $SEEDS; do
  for method in sfl_v1 fedavg_nosplit; do
    # shellcheck disable=SC2086
    enqueue run "seed$seed/${method}_long" ${METHOD[$method]} --set train.seed=$seed --set train.lr=${LR[$method]} \
      --set federation.rounds=$LONG_CAP
  done
done
drain

python3 $here/summarize.py report "$OUT" "$here" "$CLEAVE" "$JOBS"
echo "results: $here/results.md, $here/curves_tokens.png, $here/curves_bytes.png"
