// The one exception type of the wire layer: anything read from a peer that is
// malformed, truncated, oversized or not finite.
#pragma once

#include <stdexcept>

namespace cleave::wire {

class WireError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace cleave::wire
