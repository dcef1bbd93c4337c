#!/usr/bin/env bash
# Builds cleave with a sanitizer in its own directory and runs the unit and
# integration tests under it (make test-asan, make test-tsan).
#   scripts/sanitize.sh address   # ASan + UBSan, in build-asan
#   scripts/sanitize.sh thread    # TSan, in build-tsan
# Extra arguments go to ctest (for example -R SplitServer). Reports name the
# test that failed; suppressions (scripts/sanitizers/) cover only libraries
# built without the sanitizer (LibTorch, its OpenMP and BLAS, libzmq), never
# cleave's own code.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/sanitize.sh address|thread [ctest arguments]}
shift
here=$PWD/scripts/sanitizers
case "$kind" in
  address)
    build_dir=${SANITIZE_BUILD:-build-asan}
    flags=(-DCLEAVE_SANITIZE_ADDRESS=ON -DCLEAVE_SANITIZE_UNDEFINED=ON)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
    export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/lsan.supp:print_suppressions=0}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    ;;
  thread)
    build_dir=${SANITIZE_BUILD:-build-tsan}
    flags=(-DCLEAVE_SANITIZE_THREAD=ON)
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$here/tsan.supp:report_signal_unsafe=0}
    ;;
  *) echo "sanitize: unknown sanitizer '$kind' (address or thread)" >&2; exit 2 ;;
esac
# The plain build's packages, configure and build step, in its own directory.
CLEAVE_BUILD_TYPE=RelWithDebInfo CLEAVE_CMAKE_ARGS="-DCLEAVE_BUILD_BENCH=OFF ${flags[*]}" \
  scripts/setup.sh "$build_dir"
cd "$build_dir"
# Sanitized runs are slower: each test gets three times the plain timeout.
ctest --output-on-failure -j "${CLEAVE_JOBS:-2}" -L 'unit|integration' --timeout 2700 "$@"
