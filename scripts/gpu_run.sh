#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and PyTorch (CUDA LibTorch), CMake and ninja
# but no internet: unpacks the Debian packages carried in gpu-debs/ (made by
# scripts/gpu_fetch_debs.sh) into a prefix, builds cleave against PyTorch's
# LibTorch, runs the `gpu`-labelled tests and the GPU step benchmark (cleave
# and HF transformers + PEFT in the same run), and writes everything to one
# folder.
#
# Usage: scripts/gpu_run.sh [RESULTS_DIR]   (default: $OUT if set, else gpu-results)
# Environment:
#   CLEAVE_DEBS=DIR          the .deb folder (default gpu-debs)
#   CLEAVE_GPU_BUILD=DIR     build folder (default build-cuda)
#   CLEAVE_TORCH_MODE=root|config   root (default when nvcc is absent): link the
#                            torch package's libraries directly (no CUDA toolkit
#                            needed); config: find_package(Torch) via
#                            torch.utils.cmake_prefix_path (needs nvcc).
#   CLEAVE_STEPS=N           timed steps per benchmark (default 10)
#   CLEAVE_JOBS=N            build jobs (default: all cores)
#   CLEAVE_SKIP_BENCH=1      tests only
#   CLEAVE_CPU_CHECK=1       the non-GPU parts only, here with Debian's CPU
#                            LibTorch (find_package), to test this script
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
results=${1:-${OUT:-gpu-results}}
debs=${CLEAVE_DEBS:-gpu-debs}
build=${CLEAVE_GPU_BUILD:-build-cuda}
steps=${CLEAVE_STEPS:-10}
jobs=${CLEAVE_JOBS:-$(nproc 2>/dev/null || echo 4)}
mkdir -p "$results"
results=$(cd "$results" && pwd)
log="$results/gpu_run.log"
: >"$log"
say() { echo "gpu_run: $*" | tee -a "$log"; }
fail() { say "FAILED: $*"; exit 1; }

# --- 1. what is here -------------------------------------------------------
{
  echo "== machine"; uname -a; date -u
  nvidia-smi 2>&1 | head -20 || echo "no nvidia-smi"
  cmake --version | head -1; ninja --version; c++ --version | head -1
  ldd --version | head -1
} >>"$log" 2>&1
python=${PYTHON:-python3}
torch_version="" torch_cmake="" torch_dir="" torch_abi="" torch_cuda="" cudart_include=""
torch_info=$("$python" - <<'PY' 2>>"$log"
import os, torch
print(torch.__version__)
print(torch.utils.cmake_prefix_path)
print(os.path.dirname(torch.__file__))
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(int(torch.cuda.is_available()))
import importlib.util
spec = importlib.util.find_spec("nvidia")
paths = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
print(":".join(os.path.join(p, "cuda_runtime", "include") for p in paths))
PY
)
if [[ -z "$torch_info" && -z "${CLEAVE_CPU_CHECK:-}" ]]; then
  fail "python3 cannot import torch (set PYTHON=...)"
fi
if [[ -n "$torch_info" ]]; then
  mapfile -t t <<<"$torch_info"
  torch_version=${t[0]} torch_cmake=${t[1]} torch_dir=${t[2]} torch_abi=${t[3]} torch_cuda=${t[4]} cudart_include=${t[5]}
  say "PyTorch $torch_version at $torch_dir (cxx11 ABI $torch_abi, cuda available $torch_cuda)"
fi

# --- 2. the carried Debian packages, unpacked into a prefix --------------------
prefix="$repo/$build-prefix"
[[ -d "$debs" ]] && ls "$debs"/*.deb >/dev/null 2>&1 || fail "no .deb files in $debs: run scripts/gpu_fetch_debs.sh on a Debian 12 machine and carry $debs"
rm -rf "$prefix" && mkdir -p "$prefix"
for deb in "$debs"/*.deb; do
  if command -v dpkg >/dev/null; then
    dpkg -x "$deb" "$prefix" || fail "dpkg -x $deb"
  else  # ar + tar: a .deb is an ar archive with data.tar.*
    (tmp=$(mktemp -d) && cd "$tmp" && ar x "$repo/$deb" && tar -xf data.tar.* -C "$prefix" && rm -rf "$tmp") ||
      fail "unpacking $deb"
  fi
done
lib="$prefix/usr/lib/x86_64-linux-gnu"
# Absolute symlinks (libz.so -> /lib/...) point into the prefix instead.
find "$prefix" -type l | while read -r link; do
  target=$(readlink "$link")
  if [[ "$target" == /* ]]; then
    if [[ -e "$prefix$target" ]]; then ln -sfn "$prefix$target" "$link"
    elif [[ -e "$prefix/usr$target" ]]; then ln -sfn "$prefix/usr$target" "$link"; fi
  fi
done
# pkg-config files: the prefix, and no Requires.private (only the shared
# libzmq is linked, its private dependencies are not needed at build time).
for pc in "$lib"/pkgconfig/*.pc; do
  sed -i -e "s|^prefix=/usr|prefix=$prefix/usr|" -e '/^Requires.private/d' "$pc"
done
say "unpacked $(ls "$debs"/*.deb | wc -l) packages into $prefix"

# --- 3. configure and build ----------------------------------------------------
export PKG_CONFIG_PATH="$lib/pkgconfig"
args=(-S "$repo" -B "$repo/$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  "-DCMAKE_PREFIX_PATH=$prefix/usr"
  "-DOPENSSL_ROOT_DIR=$prefix/usr" "-DZLIB_ROOT=$prefix/usr"
  "-DCLEAVE_GTEST_SOURCE_DIR=$prefix/usr/src/googletest"
  "-DCMAKE_BUILD_RPATH=$lib")
mode=${CLEAVE_TORCH_MODE:-}
if [[ -n "${CLEAVE_CPU_CHECK:-}" ]]; then
  mode=debian
elif [[ -z "$mode" ]]; then
  mode=root
  command -v nvcc >/dev/null && mode=config
fi
extra_flags=""
for inc in ${cudart_include//:/ }; do [[ -d "$inc" ]] && extra_flags+=" -I$inc"; done
case "$mode" in
  config) args+=("-DCMAKE_PREFIX_PATH=$prefix/usr;$torch_cmake") ;;
  root) args+=("-DCLEAVE_TORCH_ROOT=$torch_dir" "-DCLEAVE_TORCH_CXX11_ABI=$torch_abi") ;;
  debian) ;;  # Debian's CPU LibTorch, found as usual
  *) fail "CLEAVE_TORCH_MODE must be root or config" ;;
esac
[[ -n "$extra_flags" ]] && args+=("-DCMAKE_CXX_FLAGS=$extra_flags")
say "configuring ($mode): cmake ${args[*]}"
rm -f "$repo/$build/CMakeCache.txt"
cmake "${args[@]}" >>"$log" 2>&1 || fail "configure (see $log)"
grep -E "^(yaml-cpp_DIR|cereal_DIR|OPENSSL_INCLUDE_DIR|ZLIB_INCLUDE_DIR|ZMQ_INCLUDEDIR|Torch_DIR|CLEAVE_TORCH_ROOT)[:=]" \
  "$repo/$build/CMakeCache.txt" | tee -a "$log"
targets=(model_compute_test client_mixed_precision_test client_cuda_gpu_test split_split_gpu_test
  split_split_mixed_precision_test gpu_step_bench)
# The CPU check builds what needs no LibTorch but every carried package:
# ZeroMQ (pkg-config), Cereal, GoogleTest from source.
[[ -n "${CLEAVE_CPU_CHECK:-}" ]] && targets=(wire_frame_test transport_zmq_channel_test)
say "building ${targets[*]}"
cmake --build "$repo/$build" -j "$jobs" --target "${targets[@]}" >>"$log" 2>&1 || fail "build (see $log)"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [[ -n "${CLEAVE_CPU_CHECK:-}" ]]; then
  for t in "${targets[@]}"; do
    ldd "$repo/$build/tests/$t" | grep -E "zmq|gtest|sodium" | tee -a "$log"
    "$repo/$build/tests/$t" --gtest_brief=1 >>"$log" 2>&1 || fail "$t"
  done
  say "CPU check: configured, built and ran ${targets[*]} against $prefix"
  exit 0
fi

# --- 4. tests ------------------------------------------------------------------
for shared in "${CLEAVE_SHARED:-}" "$repo/shared" "$repo/../shared"; do
  if [[ -n "$shared" && -f "$shared/models/stories260K.gguf" ]]; then export CLEAVE_SHARED=$shared; break; fi
done
say "CLEAVE_SHARED=${CLEAVE_SHARED:-<none: the stories260K tests use a generated model of its shape>}"
status=0
(cd "$repo/$build" && ctest -L gpu --output-on-failure) \
  >"$results/ctest_gpu.txt" 2>&1 || status=1
# Also the CPU-side device tests in the same build.
(cd "$repo/$build" && ctest --output-on-failure -R "^(Compute|MixedPrecision|SplitMixedPrecision)\.") >"$results/ctest_cpu_side.txt" 2>&1 || status=1
say "tests: $(grep -h 'tests passed' "$results"/ctest_*.txt | tr '\n' ' ')"

# --- 5. benchmark: cleave and HF + PEFT, same shapes, same run -----------------
if [[ -z "${CLEAVE_SKIP_BENCH:-}" ]]; then
  bench="$results/gpu_step.jsonl"
  : >"$bench"
  for shape in smollm tinyllama; do
    say "bench $shape: cleave"
    "$repo/$build/bin/gpu_step_bench" --shape "$shape" --steps "$steps" >>"$bench" 2>>"$log" || status=1
    "$repo/$build/bin/gpu_step_bench" --shape "$shape" --steps "$steps" --recompute >>"$bench" 2>>"$log" || status=1
    say "bench $shape: HF transformers + PEFT"
    "$python" "$repo/bench/gpu_step_hf.py" --shape "$shape" --steps "$steps" >>"$bench" 2>>"$log" || status=1
    "$python" "$repo/bench/gpu_step_hf.py" --shape "$shape" --steps "$steps" --recompute >>"$bench" 2>>"$log" || status=1
  done
  cat "$bench" | tee -a "$log"
fi
say "done (status $status); results in $results"
exit $status
