// Wall time on the steady clock, the one way the code measures it.
#pragma once

#include <chrono>

namespace cleave {

using SteadyTime = std::chrono::steady_clock;

// Seconds from `start` to now.
inline double seconds_since(SteadyTime::time_point start) {
  return std::chrono::duration<double>(SteadyTime::now() - start).count();
}

}  // namespace cleave
