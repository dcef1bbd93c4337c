#include "secagg/round_params.h"

#include <algorithm>
#include <cmath>

namespace cleave::secagg {

bool fits_in_sum(int64_t sites, int64_t weight_cap, double clip_range, int32_t scale_bits) {
  if (sites < 1 || weight_cap < 1 || !(clip_range > 0) || scale_bits < 0 || scale_bits > 62) return false;
  // The largest |sum|: every term at the clip with its rounding, n * (w R 2^S + 1).
  const long double largest = static_cast<long double>(sites) *
                              (static_cast<long double>(weight_cap) * clip_range * std::ldexp(1.0L, scale_bits) + 1);
  return largest < std::ldexp(1.0L, 63);
}

uint32_t share_point(const RoundParams& params, const std::string& client_id) {
  auto it = std::lower_bound(params.sampled.begin(), params.sampled.end(), client_id);
  if (it == params.sampled.end() || *it != client_id) return 0;
  return static_cast<uint32_t>(it - params.sampled.begin()) + 1;
}

}  // namespace cleave::secagg
