#!/usr/bin/env bash
# The split-learning benchmark (issue 3): builds split_step_bench, then runs
# the step-time / bytes-per-token benchmark (stories260K and a random ~40M
# Llama; local vs split over in-process and tcp loopback, vanilla and
# U-shaped, every codec) and the codec perplexity study (a short fine-tune of
# stories260K per codec), writing markdown tables to bench-out/split.md.
# Usage: scripts/bench_split.sh [BUILD_DIR]   (default: build)
#        BENCH_ARGS="--steps 4" STUDY_ARGS="--study-steps 50" scripts/bench_split.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
stories=../shared/models/stories260K.gguf
data=../shared/data/medquad/medquad_cancergov.jsonl
out=bench-out/split.md

if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build_dir" -j "${CLEAVE_JOBS:-2}" --target split_step_bench

mkdir -p "$(dirname "$out")"
{
  echo "# Split learning benchmark"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) hardware threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start."
  echo
} >"$out"
# shellcheck disable=SC2086  # BENCH_ARGS / STUDY_ARGS are word lists
"$build_dir/bin/split_step_bench" --stories "$stories" --out "$out" ${BENCH_ARGS:-}
# shellcheck disable=SC2086
"$build_dir/bin/split_step_bench" --codec-study --stories "$stories" --data "$data" --out "$out" ${STUDY_ARGS:-}
echo "bench_split: tables written to $out"
