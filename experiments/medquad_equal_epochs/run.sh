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

# 4. Aggregating more often: SFL-V1 (u_shaped) with FREQUENCIES rounds per
#    epoch. federation.local_epochs is 1/k, so each round every site trains on
#    a fresh random 1/k of its training data (its round's shuffle): k rounds
#    are one epoch of data in expectation. Evaluated and stopped per epoch
#    (eval_every k), at most LONG_CAP epochs. The client learning rate is tuned
#    again at each frequency (a round's schedule is k times shorter), FedAdam's
#    server settings at the highest frequency, all on the validation set.
FREQUENCIES=${FREQUENCIES:-"2 4"}
per_epoch() { echo "--set federation.local_epochs=$(python3 -c "print(1 / $1)") --set federation.eval_every=$1"; }
for k in $FREQUENCIES; do
  for lr in $GRID; do
    # shellcheck disable=SC2046,SC2086
    enqueue run "tune/sfl_v1_x$k/lr$lr" ${METHOD[sfl_v1]} "${tune[@]}" $(per_epoch "$k") \
      --set federation.rounds=$((TUNE_ROUNDS * k)) --set train.lr=$lr
  done
done
drain
eval "$(python3 $here/summarize.py best "$OUT" frequency)"   # sets LR_sfl_v1_x<k>
top=${FREQUENCIES##* }
lr_top=LR_sfl_v1_x$top
for eta in $SERVER_GRID; do
  for tau in $TAU_GRID; do
    # shellcheck disable=SC2046,SC2086
    enqueue run "tune/fedadam_x$top/server_lr${eta}_tau$tau" ${METHOD[fedadam]} "${tune[@]}" $(per_epoch "$top") \
      --set federation.rounds=$((TUNE_ROUNDS * top)) --set train.lr=${!lr_top} \
      --set federation.server_lr=$eta --set federation.server_tau=$tau
  done
done
drain
eval "$(python3 $here/summarize.py best "$OUT" server "fedadam_x$top")"   # sets SERVER_LR_fedadam_x<top>, SERVER_TAU_...
eta_top=SERVER_LR_fedadam_x$top tau_top=SERVER_TAU_fedadam_x$top
for seed in $SEEDS; do
  for k in $FREQUENCIES; do
    lr=LR_sfl_v1_x$k
    # shellcheck disable=SC2046,SC2086
    enqueue run "seed$seed/sfl_v1_x$k" ${METHOD[sfl_v1]} --set train.seed=$seed --set train.lr=${!lr} \
      $(per_epoch "$k") --set federation.rounds=$((LONG_CAP * k))
  done
  # shellcheck disable=SC2046,SC2086
  enqueue run "seed$seed/fedadam_x$top" ${METHOD[fedadam]} --set train.seed=$seed --set train.lr=${!lr_top} \
    --set federation.server_lr=${!eta_top} --set federation.server_tau=${!tau_top} \
    $(per_epoch "$top") --set federation.rounds=$((LONG_CAP * top))
done
drain

# 5. Server momentum and a server learning rate (FedAvgM, strategy fedavgm):
#    SFL-V1 at one round per epoch and SFL-V1's client learning rate, (eta,
#    momentum) tuned on the validation set, then every seed to convergence
#    with at most LONG_CAP epochs. A mean of 11 sites' deltas moves the
#    adapters about as far as one site's steps; eta > 1 or momentum scale it up.
FEDAVGM_GRID=${FEDAVGM_GRID:-"0.5,0.5 0.2,0.8 0.1,0.9 1,0.5 1,0.8 2,0 2,0.5 4,0 4,0.5"}   # eta,momentum pairs; the first three keep eta / (1 - momentum) at 1
for pair in $FEDAVGM_GRID; do
  eta=${pair%,*} momentum=${pair#*,}
  # shellcheck disable=SC2086
  enqueue run "tune/fedavgm/eta${eta}_momentum$momentum" ${METHOD[sfl_v1]} "${tune[@]}" --set train.lr=$LR_sfl_v1 \
    --set federation.strategy=fedavgm --set federation.fedavgm.eta=$eta --set federation.fedavgm.momentum=$momentum
done
drain
eval "$(python3 $here/summarize.py best "$OUT" fedavgm)"   # sets FEDAVGM_ETA and FEDAVGM_MOMENTUM
for seed in $SEEDS; do
  # shellcheck disable=SC2086
  enqueue run "seed$seed/fedavgm" ${METHOD[sfl_v1]} --set train.seed=$seed --set train.lr=$LR_sfl_v1 \
    --set federation.strategy=fedavgm --set federation.fedavgm.eta=$FEDAVGM_ETA \
    --set federation.fedavgm.momentum=$FEDAVGM_MOMENTUM --set federation.rounds=$LONG_CAP
done
drain

# 6. LoRA-aware aggregation: SFL-V1 at one round per epoch with
#    lora.aggregation product (the weighted mean of the sites' B A, re-factored
#    to rank r by truncated SVD) instead of separate (A and B averaged on their
#    own), the client learning rate tuned again, then every seed with at most
#    LONG_CAP epochs.
for lr in $GRID; do
  # shellcheck disable=SC2086
  enqueue run "tune/sfl_v1_product/lr$lr" ${METHOD[sfl_v1]} "${tune[@]}" --set lora.aggregation=product --set train.lr=$lr
done
drain
eval "$(python3 $here/summarize.py best "$OUT" product)"   # sets LR_sfl_v1_product
for seed in $SEEDS; do
  # shellcheck disable=SC2086
  enqueue run "seed$seed/sfl_v1_product" ${METHOD[sfl_v1]} --set lora.aggregation=product --set train.seed=$seed \
    --set train.lr=$LR_sfl_v1_product --set federation.rounds=$LONG_CAP
done
drain

# 7. One schedule across the rounds (federation.lr_across_rounds): each
#    round's peak rate decays by a cosine across federation.rounds to
#    train.min_lr_ratio of train.lr, as centralized's one schedule does across
#    its epochs. SFL-V1 at one round per epoch, the client learning rate tuned
#    again (3 epochs: the schedule then spans 3 rounds, as centralized's tuning
#    runs span 3 epochs), then every seed with at most 12 epochs (centralized's
#    cap: the same schedule length) and at most LONG_CAP.
for lr in $GRID; do
  # shellcheck disable=SC2086
  enqueue run "tune/sfl_v1_across/lr$lr" ${METHOD[sfl_v1]} "${tune[@]}" --set federation.lr_across_rounds=true \
    --set train.lr=$lr
done
drain
eval "$(python3 $here/summarize.py best "$OUT" across)"   # sets LR_sfl_v1_across
for seed in $SEEDS; do
  for cap in 12 $LONG_CAP; do
    # shellcheck disable=SC2086
    enqueue run "seed$seed/sfl_v1_across_$cap" ${METHOD[sfl_v1]} --set federation.lr_across_rounds=true \
      --set train.seed=$seed --set train.lr=$LR_sfl_v1_across --set federation.rounds=$cap
  done
done
drain

# 8. Both: 4 rounds per epoch (stage 4's early speed) under one schedule
#    across the rounds (stage 7's annealing), at most LONG_CAP epochs
#    (4 x LONG_CAP rounds, the schedule spanning them), the client learning
#    rate tuned again (3 epochs: 12 rounds, the schedule spanning them).
for lr in $GRID; do
  # shellcheck disable=SC2046,SC2086
  enqueue run "tune/sfl_v1_x4_across/lr$lr" ${METHOD[sfl_v1]} "${tune[@]}" $(per_epoch 4) \
    --set federation.rounds=$((TUNE_ROUNDS * 4)) --set federation.lr_across_rounds=true --set train.lr=$lr
done
drain
eval "$(python3 $here/summarize.py best "$OUT" x4_across)"   # sets LR_sfl_v1_x4_across
for seed in $SEEDS; do
  # shellcheck disable=SC2046,SC2086
  enqueue run "seed$seed/sfl_v1_x4_across" ${METHOD[sfl_v1]} $(per_epoch 4) --set federation.lr_across_rounds=true \
    --set train.seed=$seed --set train.lr=$LR_sfl_v1_x4_across --set federation.rounds=$((LONG_CAP * 4))
done
drain

python3 $here/summarize.py report "$OUT" "$here" "$CLEAVE" "$JOBS"
echo "results: $here/results.md, $here/curves_tokens.png, $here/curves_bytes.png"
