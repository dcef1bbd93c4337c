#!/usr/bin/env bash
# Installs what cleave needs from Debian 12 packages (when root), configures
# and builds. Usage: scripts/setup.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}

packages=(build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libdnnl-dev libopenblas0-pthread libzmq3-dev cppzmq-dev libssl-dev
  libcereal-dev nlohmann-json3-dev libcli11-dev libyaml-cpp-dev libgtest-dev zlib1g-dev python3-torch libpcre2-dev
  libcpp-httplib-dev python3-prometheus-client libopenmpi-dev openmpi-bin
  libtcmalloc-minimal4)  # the benchmark's eager PyTorch baseline (bench/train_step_eager.py)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# Debian's LibTorch calls libblas.so.3; make sure that is OpenBLAS, not the
# reference BLAS (about 30x slower for float32 matmuls).
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *) echo "setup: warning: libblas.so.3 is $blas, not OpenBLAS; training will be slow" >&2 ;;
esac

# A new build directory is configured once: Release, or CLEAVE_BUILD_TYPE,
# with any CLEAVE_CMAKE_ARGS (scripts/sanitize.sh passes its sanitizer here).
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  read -r -a extra_args <<< "${CLEAVE_CMAKE_ARGS:-}"
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="${CLEAVE_BUILD_TYPE:-Release}" "${extra_args[@]}"
fi
cmake --build "$build_dir" -j "${CLEAVE_JOBS:-2}"
