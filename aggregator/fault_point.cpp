#include "aggregator/fault_point.h"

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <string>

namespace cleave::aggregator {

void fault_point(const char* name) {
  const char* wanted = std::getenv("CLEAVE_FAULT_POINT");
  if (!wanted || !*wanted) return;
  const std::string spec(wanted);
  const size_t colon = spec.rfind(':');
  const std::string point = colon == std::string::npos ? spec : spec.substr(0, colon);
  if (point != name) return;
  long pass = 1;
  if (colon != std::string::npos) {
    char* end = nullptr;
    pass = std::strtol(spec.c_str() + colon + 1, &end, 10);
    if (*end != '\0' || pass < 1) {
      std::cerr << "CLEAVE_FAULT_POINT=" << spec << ": the pass after ':' must be a positive integer" << std::endl;
      std::abort();
    }
  }
  static std::atomic<long> passes{0};   // one point is armed per process
  if (++passes != pass) return;
  std::cerr << "fault point " << name << " reached (pass " << pass << "): stopping for the test" << std::endl;
  raise(SIGSTOP);
}

}  // namespace cleave::aggregator
