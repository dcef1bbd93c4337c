#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in BUILD_DIR and runs
# each for SECONDS, starting from the seed corpus in fuzz/corpus/.
# Usage: scripts/fuzz.sh [BUILD_DIR] [SECONDS] [TARGET...]   (make fuzz)
# Findings (crash-*, leak-*, timeout-*) land in BUILD_DIR/fuzz-findings/;
# the grown corpus in BUILD_DIR/fuzz-corpus/<target>/. Exits 1 on a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build-fuzz}
seconds=${2:-60}
shift $(( $# > 2 ? 2 : $# ))
targets=("$@")

cxx=${FUZZ_CXX:-clang++}
if ! command -v "$cxx" >/dev/null; then
  echo "fuzz: $cxx not found; on Debian 12: apt-get install clang libclang-rt-14-dev" >&2
  exit 1
fi
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER="$cxx" -DCLEAVE_FUZZ=ON -DCLEAVE_BUILD_TESTS=OFF -DCLEAVE_BUILD_BENCH=OFF
fi
if ((${#targets[@]} == 0)); then
  targets=(wire_decoder_fuzz secure_channel_fuzz gguf_fuzz safetensors_fuzz json_dataset_fuzz
           hf_checkpoint_fuzz config_yaml_fuzz)
  # split_server_fuzz links LibTorch; -DCLEAVE_FUZZ_SPLIT_SERVER=OFF leaves it out.
  grep -q '^CLEAVE_FUZZ_SPLIT_SERVER:BOOL=OFF' "$build_dir/CMakeCache.txt" || targets+=(split_server_fuzz)
fi
cmake --build "$build_dir" -j "${CLEAVE_JOBS:-2}" --target "${targets[@]}"

findings="$build_dir/fuzz-findings"
mkdir -p "$findings"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
status=0
for target in "${targets[@]}"; do
  corpus="$build_dir/fuzz-corpus/$target"
  mkdir -p "$corpus"
  echo "fuzz: $target for ${seconds}s (corpus $corpus, seeds fuzz/corpus/$target)"
  log="$build_dir/fuzz-$target.log"
  rc=0
  seeds=("fuzz/corpus/$target")
  # The configuration files the project ships are seeds for the YAML target.
  [[ $target == config_yaml_fuzz ]] && seeds+=(configs)
  "$build_dir/bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/$target-" \
    "$corpus" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|peak_rss)|ERROR|SUMMARY|written to' \
    "$log" || true
  if ((rc != 0)); then
    echo "fuzz: $target found a problem (exit $rc): see $log and $findings/" >&2
    status=1
  fi
done
exit $status
