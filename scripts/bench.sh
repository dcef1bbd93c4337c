#!/usr/bin/env bash
# The training-step benchmark (issue 2, section 7): builds train_step_bench,
# then for each row runs cleave's step and the same step in eager PyTorch
# (bench/train_step_eager.py) back to back, so both see the same machine load,
# and prints a markdown table (also written to bench-out/train_step.md).
# Each row runs four steps: cleave as configured by default (runtime.matmul
# auto: bf16 frozen matmuls where the CPU has bf16 dot products), cleave with
# float32 matmuls, eager PyTorch in float32 and eager PyTorch under
# torch.autocast(cpu, bfloat16) (its own mixed precision). Both eager steps are
# the script's tuned form at their fastest thread count (--threads best), and
# the table's bold ratio is cleave against the faster of the two. The eager
# steps run under tcmalloc where libtcmalloc-minimal4 is installed (their
# --malloc default; glibc's malloc made them up to 7x slower on this VM, see
# the script's docstring); cleave runs as it ships, on glibc. Rows with
# an int8 base also run cleave with runtime.matmul int8 (int8 products on the
# weights' codes, model/int8_matmul.h), reported in two more columns.
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
# The tuned eager form must compute what the textbook form does.
"$python" bench/train_step_eager.py --check
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
rm -f "$out/cleave.tsv" "$out/cleave_f32.tsv" "$out/cleave_int8.tsv" "$out/eager.tsv" "$out/eager_autocast.tsv"
for row in ${ROWS:-$default_rows}; do
  if [[ $row == stories260K:* && ! -f $stories ]]; then
    echo "bench: skipping $row: $stories not found"
    continue
  fi
  echo "== $row"
  "$build_dir/bin/train_step_bench" --only "$row" --stories "$stories" --tsv "$out/cleave.tsv"
  "$build_dir/bin/train_step_bench" --only "$row" --stories "$stories" --matmul float32 \
    --tsv "$out/cleave_f32.tsv"
  if [[ $row == *:int8 ]]; then
    "$build_dir/bin/train_step_bench" --only "$row" --stories "$stories" --matmul int8 \
      --tsv "$out/cleave_int8.tsv"
  fi
  "$python" bench/train_step_eager.py --only "$row" --tsv "$out/eager.tsv"
  "$python" bench/train_step_eager.py --only "$row" --autocast --tsv "$out/eager_autocast.tsv"
done

"$python" - "$out" <<'PY'
import os, sys
out = sys.argv[1]
def rows(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return {}
    return {(f[0], f[3]): f for f in (l.rstrip("\n").split("\t") for l in open(path)) if f[0]}
cleave, cleave32, cleave8 = rows("cleave.tsv"), rows("cleave_f32.tsv"), rows("cleave_int8.tsv")
eager, autocast = rows("eager.tsv"), rows("eager_autocast.tsv")
gflops = sorted(float(f[7]) for f in cleave32.values())
def tok(table, key, col=4):
    f = table.get(key)
    return float(f[col]) if f else None
def fmt(x, spec):
    return "-" if x is None else format(x, spec)
def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}x"
def threads(table, key):
    f = table.get(key)
    if not f or len(f) <= 6:
        return ""
    return f" ({f[6]} thr, {f[7]})" if len(f) > 7 else f" ({f[6]} thr)"
lines = [
    "| model | batch x seq | quant | cleave tok/s (matmul) | cleave float32 tok/s | PyTorch tok/s "
    "| PyTorch autocast bf16 tok/s | cleave / PyTorch | cleave float32 / PyTorch "
    "| cleave / PyTorch autocast | cleave / strongest PyTorch | MFU | peak RSS cleave (MiB) "
    "| peak RSS PyTorch (MiB) | peak RSS PyTorch autocast (MiB) "
    "| cleave matmul int8 tok/s | cleave matmul int8 / strongest PyTorch |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for key, c in cleave.items():
    t, t32, te, ta = tok(cleave, key), tok(cleave32, key), tok(eager, key), tok(autocast, key)
    t8 = tok(cleave8, key)
    strongest = max((x for x in (te, ta) if x is not None), default=None)
    matmul = c[9] if len(c) > 9 else "float32"
    rss_e, rss_a = tok(eager, key, 5), tok(autocast, key, 5)
    lines.append(
        f"| {c[0]} | {c[1]} x {c[2]} | {c[3]} | {t:.0f} ({matmul}) | {fmt(t32, '.0f')} | "
        f"{fmt(te, '.0f')}{threads(eager, key)} | {fmt(ta, '.0f')}{threads(autocast, key)} | {ratio(t, te)} | "
        f"{ratio(t32, te)} | {ratio(t, ta)} | **{ratio(t, strongest)}** | "
        f"{100 * float(c[5]):.1f}% | {int(c[6]) / 1024:.0f} | "
        f"{fmt(None if rss_e is None else rss_e / 1024, '.0f')} | "
        f"{fmt(None if rss_a is None else rss_a / 1024, '.0f')} | {fmt(t8, '.0f')} | "
        f"{'-' if t8 is None else '**' + ratio(t8, strongest) + '**'} |")
if gflops:
    lines.append("")
    lines.append(f"MFU against the matmul rate of the arithmetic cleave used, measured before "
                 f"each row (float32: {gflops[0]:.0f}-{gflops[-1]:.0f} GFLOP/s).")
table = "\n".join(lines) + "\n"
open(os.path.join(out, "train_step.md"), "w").write(table)
print()
print(table, end="")
PY
