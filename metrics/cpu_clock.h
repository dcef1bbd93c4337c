// The clocks a role's cost is measured with: wall time on the steady clock,
// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID) and of the whole
// process, every thread together (CLOCK_PROCESS_CPUTIME_ID: user + system,
// the same sum getrusage(RUSAGE_SELF) reports), all in seconds.
#pragma once

namespace cleave::metrics {

double wall_seconds();          // steady clock, from an arbitrary origin
double thread_cpu_seconds();    // this thread's CPU time since it started
double process_cpu_seconds();   // every thread of the process, since it started

// One reading of the three clocks.
struct CpuSample {
  double wall = 0, thread_cpu = 0, process_cpu = 0;
  static CpuSample now();
};

}  // namespace cleave::metrics
