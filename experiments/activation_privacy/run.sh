#!/usr/bin/env bash
# What an honest-but-curious split server recovers of a site's text from the
# smashed activations (`cleave audit`), on stories260K: cut layers 1-4, every
# activation codec, and Gaussian noise from none up to the first level where
# the best attack recovers under 5% of the tokens. Writes results.md here.
#   experiments/activation_privacy/run.sh [BUILD_DIR]     (from the repository root)
# Needs ../shared (or CLEAVE_SHARED) and a built cleave (default build/).
# JOBS audits run at once, one thread each (default: the number of cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
shared=${CLEAVE_SHARED:-../shared}
here=experiments/activation_privacy
model=$shared/models/stories260K.gguf
stories=$shared/data/tinystories/tinystories_sample.jsonl
for f in "$model" "$stories" "$build/bin/cleave"; do [[ -f $f ]] || { echo "needs $f" >&2; exit 1; }; done
jobs=${JOBS:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The site's text: the sample's last 16 stories (256 tokens are audited); the
# attacker's public text: every other story (16384 tokens are used).
tail -n 16 "$stories" > "$work/site.jsonl"
head -n -16 "$stories" > "$work/public.jsonl"
export CLEAVE="$build/bin/cleave" MODEL="$model" WORK="$work"
export NOISES="0.1 0.3 1 3 10"

# One ladder: a cut layer and a codec, first without protection (which also
# gives the median token norm, used as the clip), then each noise level until
# the best attack falls under 5%.
ladder() {
  set -euo pipefail
  local cut=$1 codec=$2
  audit() {
    "$CLEAVE" audit --model "$MODEL" --data "$WORK/site.jsonl" --public "$WORK/public.jsonl" \
      --cut-layer "$cut" --codec "$codec" --max-tokens 256 --threads 1 "$@"
  }
  audit > "$WORK/run_${cut}_${codec}_none.log"
  local clip
  clip=$(sed -n 's/^smashed token L2 norm before the channel: median //p' "$WORK/run_${cut}_${codec}_none.log")
  for noise in $NOISES; do
    local log="$WORK/run_${cut}_${codec}_${noise}.log"
    audit --activation-clip "$clip" --activation-noise "$noise" > "$log"
    echo "cut $cut, $codec, clip $clip, noise $noise: $(tail -n 1 "$log")" >&2
    awk '/^token recovery:/ { exit !($3 + 0 < 5) }' "$log" && break
  done
  return 0
}
export -f ladder

start=$(date +%s)
for cut in 1 2 3 4; do for codec in f32 f16 bf16 int8; do echo "$cut $codec"; done; done |
  xargs -P "$jobs" -L 1 bash -c 'ladder "$@"' ladder
seconds=$(( $(date +%s) - start ))

python3 - "$work" "$here/results.md" "$seconds" "$jobs" <<'PY'
import glob, os, re, sys, datetime, platform
work, out, seconds, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
short = {"context-free lookup": "lookup", "white-box inversion": "WB",
         "white-box inversion with the base model as prior": "WB+prior", "learned inversion": "learned"}
runs = {}
for path in glob.glob(os.path.join(work, "run_*.log")):
    cut, codec, noise = os.path.basename(path)[4:-4].split("_")
    text = open(path).read()
    attacks = {m[0]: float(m[1]) for m in re.findall(r"^(.+?): \d+/\d+ tokens \(([\d.]+)%\)", text, re.M)}
    runs[(int(cut), codec, noise)] = {
        "attacks": attacks,
        "best": re.search(r"^best attack: (.+)$", text, re.M).group(1),
        "rate": float(re.search(r"^token recovery: ([\d.]+)%$", text, re.M).group(1)),
        "clip": re.search(r"^smashed token L2 norm before the channel: median (\S+)", text, re.M).group(1),
        "baseline": re.search(r"^baseline, .*: ([\d.]+)%$", text, re.M).group(1),
    }
codecs = ["f32", "f16", "bf16", "int8"]
levels = ["none"] + os.environ["NOISES"].split()
# The fine-tune's held-out perplexity at each cut and noise, from cost.md
# (cost.sh, the MedQuAD split fleet) where it was measured.
cost = {}
cost_path = os.path.join(os.path.dirname(out), "cost.md")
if os.path.exists(cost_path):
    for m in re.finditer(r"^\| (\d+) \| (none|clip [\d.]+, noise ([\d.]+) x clip) \| ([\d.]+) \|", open(cost_path).read(), re.M):
        cost[(int(m[1]), m[3] or "none")] = m[4]
lines = ["<!-- written by experiments/activation_privacy/run.sh; do not edit by hand -->", "",
         f"{seconds} s wall for {len(runs)} audits, {jobs} at a time on {os.cpu_count()} cores "
         f"({platform.machine()}, {datetime.date.today().isoformat()}).", "",
         "## Best attack's token recovery", "",
         "Tokens of the site's 256 that the best attack recovers (which attack in brackets: "
         "WB = white-box inversion, WB+prior = with the base model as prior, learned = learned "
         "inversion, lookup = context-free lookup). noise: Gaussian std per element as a multiple "
         "of the clip; the clip is the median token norm at the cut. Chance: "
         f"{runs[(1, 'f32', 'none')]['baseline']}% (always the commonest public token). Perplexity "
         "cost: the fine-tune's final held-out perplexity with that protection on the MedQuAD split "
         "fleet, from [cost.md](cost.md) (`cost.sh`; blank where not measured).", "",
         "| cut | clip | noise | " + " | ".join(codecs) + " | perplexity cost |",
         "|---:|---:|---:|" + "---:|" * len(codecs) + "---|"]
for cut in [1, 2, 3, 4]:
    for noise in levels:
        cells = []
        for codec in codecs:
            r = runs.get((cut, codec, noise))
            cells.append(f"{r['rate']:.1f}% ({short[r['best']]})" if r else "")
        if not any(cells):
            continue
        clip = "off" if noise == "none" else runs[(cut, "f32", "none")]["clip"]
        lines.append(f"| {cut} | {clip} | {'none' if noise == 'none' else noise} | " + " | ".join(cells) +
                     f" | {cost.get((cut, noise), '')} |")
lines += ["", "## Every attack, f32 codec", "",
          "| cut | noise | lookup | WB | WB+prior | learned |", "|---:|---:|---:|---:|---:|---:|"]
for cut in [1, 2, 3, 4]:
    for noise in levels:
        r = runs.get((cut, "f32", noise))
        if not r:
            continue
        a = r["attacks"]
        cell = lambda name: f"{a[name]:.1f}%" if name in a else "-"
        lines.append(f"| {cut} | {noise} | " + " | ".join(cell(n) for n in short) + " |")
open(out, "w").write("\n".join(lines) + "\n")
print(f"results: {out}")
PY
