#include "metrics/cpu_clock.h"

#include <time.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

namespace cleave::metrics {
namespace {

double clock_seconds(clockid_t clock, const char* name) {
  timespec ts{};
  if (clock_gettime(clock, &ts) != 0) {
    // Linux has both CPU clocks since 2.6.12: a failure is a broken environment.
    throw std::runtime_error(std::string("clock_gettime(") + name + ") failed: " + std::strerror(errno));
  }
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double thread_cpu_seconds() { return clock_seconds(CLOCK_THREAD_CPUTIME_ID, "CLOCK_THREAD_CPUTIME_ID"); }

double process_cpu_seconds() { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID, "CLOCK_PROCESS_CPUTIME_ID"); }

CpuSample CpuSample::now() { return {wall_seconds(), thread_cpu_seconds(), process_cpu_seconds()}; }

}  // namespace cleave::metrics
