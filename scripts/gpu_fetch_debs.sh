#!/usr/bin/env bash
# Downloads (does not install) the Debian 12 packages that cleave needs on a
# GPU machine without internet that has PyTorch (CUDA LibTorch), CMake and
# ninja but not ZeroMQ, yaml-cpp, Cereal, nlohmann-json, GoogleTest or the OpenSSL/zlib
# headers. scripts/gpu_run.sh unpacks them there with `dpkg -x`.
# Usage: scripts/gpu_fetch_debs.sh [DIR]   (default: gpu-debs, git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-gpu-debs}

# Headers/CMake configs, and the shared libraries (with their own runtime
# dependencies) that the build links and the tests load.
packages=(
  libzmq3-dev libzmq5 cppzmq-dev libsodium23 libpgm-5.3-0 libnorm1 libbsd0 libmd0
  libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2
  libyaml-cpp-dev libyaml-cpp0.7
  libcereal-dev nlohmann-json3-dev libcli11-dev
  googletest
  libssl-dev libssl3
  zlib1g-dev zlib1g
)

mkdir -p "$dir"
cd "$dir"
rm -f ./*.deb
if ! apt-get download "${packages[@]}"; then
  echo "gpu_fetch_debs: apt-get download failed; run 'apt-get update' first" >&2
  exit 1
fi
total=$(du -cb ./*.deb | tail -1 | cut -f1)
printf 'gpu_fetch_debs: %d packages, %.1f MiB in %s\n' "$(ls ./*.deb | wc -l)" \
  "$(echo "$total / 1048576" | bc -l)" "$dir"
# The device tool carries ignored paths up to 64 MiB in all (with the build
# folders it is given).
if ((total > 48 * 1024 * 1024)); then
  echo "gpu_fetch_debs: warning: more than 48 MiB; the carry limit is 64 MiB in all" >&2
fi
