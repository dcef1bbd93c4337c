// How long idle OpenMP workers spin before they sleep.
//
// LibTorch's OpenMP workers (libgomp) and OpenBLAS's own pthreads take turns
// on the same cores: an OpenMP region is followed by a matmul on OpenBLAS's
// threads, and so on, thousands of times a step. With libgomp's default
// (spin 300,000 times before sleeping) the idle pool keeps its cores busy
// while the other pool wants them: on 2 cores more than half of a
// stories260K step went to spinning and sched_yield. GOMP_SPINCOUNT=1000 made
// the same step 1.7x faster and llama-40M's 1.2x (BENCHMARKS.md).
//
// libgomp reads its environment once, when it is loaded, before main, so the
// setting only takes effect in a fresh image of the program.
#pragma once

#include <string>

namespace cleave {

inline constexpr const char* kOpenmpSpinCount = "1000";

// Unless GOMP_SPINCOUNT or OMP_WAIT_POLICY is set already (a user's choice
// is kept), sets GOMP_SPINCOUNT and re-executes `executable` with `argv`
// (null-terminated) so libgomp starts with it. Returns only when nothing had
// to change, or when the exec failed (the program then carries on with the
// default spinning: slower, same results). Call it first in main.
void settle_openmp_spin(char** argv, const std::string& executable = "/proc/self/exe");

}  // namespace cleave
