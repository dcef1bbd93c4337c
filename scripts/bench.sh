#!/usr/bin/env bash
# The training-step benchmark (issue 2, section 7): builds train_step_bench,
# then for each row runs cleave's step and the same step in eager PyTorch
# (bench/train_step_eager.py) back to back, so both see the same machine load,
# and prints a markdown table (also written to bench-out/train_step.md).
# Usage: scripts/bench.sh [BUILD_DIR]   (default: build)
#        ROWS="llama-40M:q4 ..." scripts/bench.sh   to run some rows only
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
python=/usr/bin/python3   # Debian's interpreter: it imports python3-torch
stories=../shared/models/stories260K.gguf
out=bench-out

if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "bench: $python cannot import torch; install python3-torch (scripts/setup.sh does)" >&2
  exit 1
fi
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build_dir" -j "${CLEAVE_JOBS:-2}" --target train_step_bench

# Both sides run with the OpenMP spin count cleave sets for itself
# (model/openmp_spin.h): eager PyTorch uses the same libgomp and profits as
# much. Set GOMP_SPINCOUNT yourself to compare another value.
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-1000}
echo "GOMP_SPINCOUNT=$GOMP_SPINCOUNT for cleave and eager PyTorch"

default_rows=""
for model in stories260K llama-40M llama-110M; do
  for quant in none int8 q4; do default_rows+=" $model:$quant"; done
done
mkdir -p "$out"
rm -f "$out/cleave.tsv" "$out/eager.tsv"
for row in ${ROWS:-$default_rows}; do
  if [[ $row == stories260K:* && ! -f $stories ]]; then
    echo "bench: skipping $row: $stories not found"
    continue
  fi
  echo "== $row"
  "$build_dir/bin/train_step_bench" --only "$row" --stories "$stories" --tsv "$out/cleave.tsv"
  "$python" bench/train_step_eager.py --only "$row" --tsv "$out/eager.tsv"
done

"$python" - "$out" <<'PY'
import os, sys
out = sys.argv[1]
def rows(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return {}
    return {(f[0], f[3]): f for f in (l.rstrip("\n").split("\t") for l in open(path)) if f[0]}
cleave, eager = rows("cleave.tsv"), rows("eager.tsv")
gflops = sorted(float(f[7]) for f in cleave.values())
lines = [
    "| model | batch x seq | quant | cleave tok/s | PyTorch tok/s | cleave / PyTorch | MFU | peak RSS cleave (MiB) | peak RSS PyTorch (MiB) |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|",
]
for key, c in cleave.items():
    e = eager.get(key)
    tok, etok = float(c[4]), float(e[4]) if e else None
    lines.append(
        f"| {c[0]} | {c[1]} x {c[2]} | {c[3]} | {tok:.0f} | {etok:.0f} | {tok / etok:.2f}x | "
        f"{100 * float(c[5]):.1f}% | {int(c[6]) / 1024:.0f} | {int(e[5]) / 1024:.0f} |"
        if e else
        f"| {c[0]} | {c[1]} x {c[2]} | {c[3]} | {tok:.0f} | - | - | {100 * float(c[5]):.1f}% | "
        f"{int(c[6]) / 1024:.0f} | - |")
if gflops:
    lines.append("")
    lines.append(f"MFU against the best float32 matmul measured before each row "
                 f"({gflops[0]:.0f}-{gflops[-1]:.0f} GFLOP/s).")
table = "\n".join(lines) + "\n"
open(os.path.join(out, "train_step.md"), "w").write(table)
print()
print(table, end="")
PY
