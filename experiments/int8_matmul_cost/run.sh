#!/usr/bin/env bash
# The accuracy cost of `runtime.matmul: int8` (issue 20, section 2): the
# MedQuAD fine-tune of medquad_equal_epochs (stories260K, int8 base, LoRA
# rank 8 on every projection, 1% of each of the 11 files), trained in one
# place with its frozen products in float32, bf16 and int8, three seeds,
# for 3 epochs (the same schedule for every arithmetic) and to convergence
# (the study's stopping rule). Test perplexity of each against float32's on
# the same seed. From the repository root:
#   experiments/int8_matmul_cost/run.sh
# Needs ../shared and a built `cleave` (make build). JOBS=2 runs two runs at
# once (each on one thread); finished runs are kept, so it resumes. Writes
# runs/int8_matmul_cost/ and results.md here.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/int8_matmul_cost}
JOBS=${JOBS:-1}
SEEDS=${SEEDS:-"1 2 3"}
here=experiments/int8_matmul_cost
mkdir -p "$OUT"

# The study's configuration, and centralized's learning rate as the study
# tuned it on the validation set (experiments/medquad_equal_epochs/results.md).
CONFIG=experiments/medquad_equal_epochs/config.yaml
RUN_ARGS=(--set federation.run_fleet=false --set "federation.baselines=[centralized]" --set train.lr=0.005)
# shellcheck source=experiments/simulate_queue.sh
source experiments/simulate_queue.sh

for seed in $SEEDS; do
  for matmul in float32 bf16 int8; do
    enqueue run "seed$seed/${matmul}_3epochs" --set runtime.matmul=$matmul --set train.seed=$seed \
      --set federation.rounds=3 --set federation.stop_patience=0
    enqueue run "seed$seed/${matmul}_converged" --set runtime.matmul=$matmul --set train.seed=$seed
  done
done
drain

python3 - "$OUT" "$SEEDS" > "$here/results.md" <<'PY'
import re, statistics, sys
out, seeds = sys.argv[1], sys.argv[2].split()
def result(seed, name):
    text = open(f"{out}/seed{seed}/{name}/summary.md").read()
    row = next(l for l in text.splitlines() if l.startswith("| centralized |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    wall = open(f"{out}/seed{seed}/{name}/wall_seconds").read().strip()
    return float(cells[1]), cells[6], int(wall)
def mean_sd(xs):
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0:.3f}"
print("# The accuracy cost of int8 frozen products")
print()
print("Command: `experiments/int8_matmul_cost/run.sh` (`build/bin/cleave`); seeds " + ", ".join(seeds) + ".")
print("stories260K with an int8 frozen base (base.quant int8), LoRA rank 8 on every projection,")
print("MedQuAD (1% of each of the 11 files, medquad_equal_epochs' configuration), trained in one")
print("place at centralized's tuned rate 0.005; only `runtime.matmul` differs between rows.")
print("Test perplexity of the final adapters (global held-out set), mean ± standard deviation over")
print("the seeds; \"vs float32\": the mean over seeds of each seed's ratio to float32's run.")
print()
for kind, title in (("3epochs", "3 epochs, no early stop"), ("converged", "to convergence (the study's stopping rule, at most 12 epochs)")):
    print(f"## {title}")
    print()
    print("| frozen products | test perplexity | vs float32 | epochs | wall time per run |")
    print("|---|---|---|---|---|")
    ref = {s: result(s, f"float32_{kind}")[0] for s in seeds}
    for matmul in ("float32", "bf16", "int8"):
        runs = [result(s, f"{matmul}_{kind}") for s in seeds]
        ratios = [100 * (r[0] / ref[s] - 1) for s, r in zip(seeds, runs)]
        vs = "-" if matmul == "float32" else f"{statistics.mean(ratios):+.2f}% ± {statistics.stdev(ratios):.2f}"
        print(f"| {matmul} | {mean_sd([r[0] for r in runs])} | {vs} | {', '.join(r[1] for r in runs)} | {statistics.mean(r[2] for r in runs):.0f} s |")
    print()
print("Wall times are of runs two at a time on a shared 2-core machine: stories260K's products")
print("(dim 64) are too small for the arithmetic to set its speed; `make bench` measures that.")
PY
echo "wrote $here/results.md"
