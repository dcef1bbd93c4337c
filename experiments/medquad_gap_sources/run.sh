#!/usr/bin/env bash
# Where split-federated's gap to centralized on MedQuAD comes from (issue 14):
# SFL-V1 (u_shaped, FedAvg, one round per epoch) on three partitions of the
# same records, each against centralized training on the same data:
#   natural  11 sites, one per source file (the study in medquad_equal_epochs)
#   iid11    11 sites of the same records dealt at random (no heterogeneity)
#   iid1     one site holding every record (no averaging: only the optimizer
#            and schedule restarting each round)
# and, on the two 11-site partitions, the sites one after another instead of
# averaged (federation.sampling passes, one site per round).
# The test set is one 10% of every source file, the same for every partition
# of a seed (data.eval_fraction), so the partitions are scored alike.
# From the repository root:
#   experiments/medquad_gap_sources/run.sh
# Needs ../shared and a built `cleave` (make build). JOBS=2 runs two runs at
# once (each on one thread); finished runs are kept, so an interrupted study
# resumes. Writes runs/medquad_gap_sources/ and results.md here.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/medquad_gap_sources}
JOBS=${JOBS:-1}
SEEDS=${SEEDS:-"1 2 3"}
GRID=${GRID:-"0.002 0.005 0.01 0.02"}   # client learning rates tried per partition
SEQUENTIAL_GRID=${SEQUENTIAL_GRID:-"0.0005 0.001 0.002 0.005 0.01 0.02"}   # for the sites one after another
TUNE_ROUNDS=${TUNE_ROUNDS:-3}
FLEET_CAP=${FLEET_CAP:-24}               # most epochs of a fleet (medquad_equal_epochs' "beyond the cap")
CENTRAL_CAP=${CENTRAL_CAP:-12}           # most epochs of centralized (it converges before)
here=experiments/medquad_gap_sources

# medquad_equal_epochs' configuration, with one test set for every partition.
CONFIG=experiments/medquad_equal_epochs/config.yaml
RUN_ARGS=(--set data.eval_fraction=0.1 --set federation.client_eval_fraction=0)
# shellcheck source=experiments/simulate_queue.sh
source experiments/simulate_queue.sh

declare -A PARTITION=(
  [natural]="--set federation.partition=natural --set federation.clients=0"
  [iid11]="--set federation.partition=iid --set federation.clients=11"
  [iid1]="--set federation.partition=iid --set federation.clients=1"
)
PARTITIONS="natural iid11 iid1"
SFL_V1="--set federation.variant=sfl_v1"
CENTRALIZED="--set federation.run_fleet=false --set federation.baselines=[centralized]"
tune=(--set federation.rounds=$TUNE_ROUNDS --set federation.stop_patience=0 --set train.seed=1)

# 1. Tuning on seed 1's validation set, TUNE_ROUNDS epochs: SFL-V1's client
#    learning rate per partition; centralized's once (natural), since its data
#    is the same union of records whatever the partition.
for p in $PARTITIONS; do
  for lr in $GRID; do
    # shellcheck disable=SC2086
    enqueue run "$p/tune/sfl_v1/lr$lr" ${PARTITION[$p]} $SFL_V1 "${tune[@]}" --set train.lr=$lr
  done
done
for lr in $GRID; do
  # shellcheck disable=SC2086
  enqueue run "natural/tune/centralized/lr$lr" ${PARTITION[natural]} $CENTRALIZED "${tune[@]}" \
    --set train.lr=$lr
done
drain
LR_centralized=$(python3 $here/summarize.py best "$OUT/natural" centralized)
declare -A LR
for p in $PARTITIONS; do LR[$p]=$(python3 $here/summarize.py best "$OUT/$p" sfl_v1); done
echo "tuned: centralized $LR_centralized; sfl_v1 natural ${LR[natural]}, iid11 ${LR[iid11]}, iid1 ${LR[iid1]}"

# 2. Every seed and partition: SFL-V1 to convergence (at most FLEET_CAP
#    epochs; its rounds 1 and 3 are the equal-epoch figures, each round its own
#    schedule), centralized to convergence and at fixed budgets of 1 and 3
#    epochs (its one schedule then ends there).
for seed in $SEEDS; do
  for p in $PARTITIONS; do
    # shellcheck disable=SC2086
    enqueue run "$p/seed$seed/sfl_v1" ${PARTITION[$p]} $SFL_V1 --set train.seed=$seed \
      --set train.lr=${LR[$p]} --set federation.rounds=$FLEET_CAP
    # shellcheck disable=SC2086
    enqueue run "$p/seed$seed/centralized" ${PARTITION[$p]} $CENTRALIZED --set train.seed=$seed \
      --set train.lr=$LR_centralized --set federation.rounds=$CENTRAL_CAP
    for epochs in 1 3; do
      # shellcheck disable=SC2086
      enqueue run "$p/seed$seed/centralized_${epochs}epochs" ${PARTITION[$p]} $CENTRALIZED \
        --set train.seed=$seed --set train.lr=$LR_centralized --set federation.rounds=$epochs \
        --set federation.stop_patience=0
    done
  done
done
drain

# 3. The sites one after another instead of averaged (sequential split
#    learning: federation.sampling passes, one site per round, each site
#    starting from the adapters the one before it left), on the two 11-site
#    partitions: 11 rounds are an epoch, evaluated and stopped per epoch. The
#    client learning rate tuned again per partition, on a grid reaching lower
#    (the best of GRID was its lowest).
sequential() { echo "--set federation.clients_per_round=1 --set federation.sampling=passes --set federation.eval_every=11"; }
for p in natural iid11; do
  for lr in $SEQUENTIAL_GRID; do
    # shellcheck disable=SC2046,SC2086
    enqueue run "$p/tune/sfl_v1_sequential/lr$lr" ${PARTITION[$p]} $SFL_V1 $(sequential) "${tune[@]}" \
      --set federation.rounds=$((TUNE_ROUNDS * 11)) --set train.lr=$lr
  done
done
drain
declare -A LR_SEQ
for p in natural iid11; do LR_SEQ[$p]=$(python3 $here/summarize.py best "$OUT/$p" sfl_v1_sequential); done
echo "tuned: sequential natural ${LR_SEQ[natural]}, iid11 ${LR_SEQ[iid11]}"
for seed in $SEEDS; do
  for p in natural iid11; do
    # shellcheck disable=SC2046,SC2086
    enqueue run "$p/seed$seed/sfl_v1_sequential" ${PARTITION[$p]} $SFL_V1 $(sequential) --set train.seed=$seed \
      --set train.lr=${LR_SEQ[$p]} --set federation.rounds=$((FLEET_CAP * 11))
  done
done
drain

python3 $here/summarize.py report "$OUT" "$here" "$CLEAVE" "$JOBS"
echo "results: $here/results.md"
