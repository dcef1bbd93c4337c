#!/usr/bin/env bash
# What do 8-bit and 4-bit codecs on the split channel cost in held-out
# perplexity, and what do they save in bytes? The built-in fleet (`cleave
# simulate` without --config: 6 sites, Dirichlet by condition, 8 rounds of 10
# local steps, 3 sites per round, u_shaped SFL-V1 at cut 1, random 4-block
# model of dim 128, lora rank 8) with federation.activation_codec and
# gradient_codec both f32, int8 (per-token absmax), int4 rounded to nearest and
# int4 rounded stochastically (federation.stochastic_rounding), over 3 seeds.
# u_shaped sends four tensors per step: activations up and down, gradients up
# and down. Writes results.md here: final held-out perplexity per seed, mean
# and standard deviation, activations + gradients bytes per round, bytes per
# token and crossing, the ratio to f32 and the perplexity cost against f32.
# About 4 minutes on 2 cores.
#   experiments/activation_codecs/run.sh        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
CLEAVE=${CLEAVE:-build/bin/cleave}
OUT=${OUT:-runs/activation_codecs}
SEEDS=${SEEDS:-1 2 3}
here=experiments/activation_codecs
mkdir -p "$OUT"
start_all=$(date +%s)
for setting in "f32 false" "int8 false" "int4 false" "int4 true"; do
  read -r codec stochastic <<< "$setting"
  for seed in $SEEDS; do
    run="$OUT/$codec-sr_$stochastic-$seed"
    started=$(date +%s)
    "$CLEAVE" simulate --out "$run" --set federation.activation_codec=$codec --set federation.gradient_codec=$codec \
      --set federation.stochastic_rounding=$stochastic --set train.seed=$seed \
      --set federation.progress=false > "$run.log" 2>&1 || { tail -20 "$run.log"; exit 1; }
    echo "$(( $(date +%s) - started ))" > "$run.seconds"
    echo "$codec stochastic=$stochastic seed $seed: final perplexity $(awk -F, 'END { printf "%.3f", $5 }' "$run/metrics.csv")"
  done
done
minutes=$(( ($(date +%s) - start_all + 59) / 60 ))
python3 - "$OUT" "$here/results.md" "$minutes" "$SEEDS" <<'PY'
import csv, datetime, math, os, re, statistics, sys
out, target, minutes, seeds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()

def tokens_per_round(run, sampled):
    # batch_size x seq_len x train.steps, per sampled site
    text = open(os.path.join(run, "config.resolved.yaml")).read()
    value = lambda key: int(re.search(r"^\s*" + key + r":\s*(\d+)", text, re.M).group(1))
    return sampled * value("batch_size") * value("seq_len") * value("steps")

rows = {}
for setting in [("f32", "false"), ("int8", "false"), ("int4", "false"), ("int4", "true")]:
    finals, per_round, per_token, seconds = [], [], [], 0
    for seed in seeds:
        run = f"{out}/{setting[0]}-sr_{setting[1]}-{seed}"
        with open(os.path.join(run, "metrics.csv")) as f:
            metrics = list(csv.DictReader(f))
        finals.append(float(metrics[-1]["eval_perplexity"]))
        for m in metrics:
            channel = sum(int(m[k]) for k in ("activations_up_bytes", "activations_down_bytes",
                                              "gradients_up_bytes", "gradients_down_bytes"))
            per_round.append(channel)
            per_token.append(channel / 4 / tokens_per_round(run, int(m["reported"])))
        seconds += int(open(run + ".seconds").read())
    rows[setting] = (finals, statistics.mean(per_round), statistics.mean(per_token), seconds)

base_ppl = statistics.mean(rows[("f32", "false")][0])
base_bytes = rows[("f32", "false")][1]
lines = ["# Activation and gradient codecs on the built-in fleet", "",
         f"Command: `experiments/activation_codecs/run.sh` (about {minutes} minutes on 2 cores, "
         f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}).",
         "Built-in fleet: 6 sites, 8 rounds of 10 local steps, 3 sites per round, u_shaped SFL-V1 at cut 1, "
         "random 4-block model (dim 128), LoRA rank 8; both split codecs set alike (federation.activation_codec "
         f"and gradient_codec), seeds {' '.join(seeds)} (train.seed). Final held-out perplexity after the last round. "
         "Bytes: metrics.csv's activations_up/down + gradients_up/down per round (whole frames, as sent), "
         "mean over rounds and seeds; per token: that over 4 crossings x the tokens of a round. "
         "Cost: (mean perplexity / f32's mean - 1) in %.", "",
         "Payload per token of dim 128: f32 512 bytes, int8 128 + a 4-byte scale, int4 64 + 4 bfloat16 scales = 72 (0.5625 bytes per value); the rest is framing. The std over seeds is the noise of this measurement: a cost smaller than it is not resolved by 3 seeds.", "",
         "| codec | rounding | final perplexity per seed | mean | std | act+grad bytes per round | bytes per token and crossing | x fewer than f32 | perplexity cost | seconds (all seeds) |",
         "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
for (codec, stochastic), (finals, per_round, per_token, seconds) in rows.items():
    rounding = "-" if codec != "int4" else ("stochastic" if stochastic == "true" else "nearest")
    mean = statistics.mean(finals)
    std = statistics.stdev(finals) if len(finals) > 1 else 0.0
    cost = (mean / base_ppl - 1) * 100
    lines.append(f"| {codec} | {rounding} | {' / '.join(f'{p:.3f}' for p in finals)} | {mean:.3f} | {std:.3f} | "
                 f"{per_round:,.0f} | {per_token:.1f} | {base_bytes / per_round:.2f} | {cost:+.2f}% | {seconds} |")
open(target, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "wrote $here/results.md"
