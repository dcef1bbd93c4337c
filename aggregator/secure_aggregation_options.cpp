#include "aggregator/secure_aggregation_options.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "secagg/round_params.h"

namespace cleave::aggregator {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("secure_aggregation." + message);
}

}  // namespace

void SecureAggregationOptions::validate(int64_t max_sites) const {
  if (!enabled) return;
  require(std::isfinite(threshold) && threshold >= 0.5 && threshold < 1,
          "threshold must be in [0.5, 1) (a round needs more than this share of its sites), got " +
              std::to_string(threshold));
  require(min_sites >= 3, "min_sites must be >= 3, got " + std::to_string(min_sites));
  require(phase_timeout_ms > 0, "phase_timeout_ms must be > 0");
  require(scale_bits >= 8 && scale_bits <= 40, "scale_bits must be in [8, 40], got " + std::to_string(scale_bits));
  require(std::isfinite(clip_range) && clip_range > 0, "clip_range must be finite and > 0");
  require(weight_cap >= 1, "weight_cap must be >= 1");
  require(secagg::fits_in_sum(max_sites, weight_cap, clip_range, scale_bits),
          "scale_bits, clip_range and weight_cap let the sum of " + std::to_string(max_sites) +
              " sites (as many as can register) overflow 2^63: need sites * weight_cap * clip_range * "
              "2^scale_bits < 2^63; lower one of them");
}

uint32_t SecureAggregationOptions::threshold_for(int64_t sampled) const {
  return static_cast<uint32_t>(std::floor(threshold * static_cast<double>(sampled))) + 1;
}

}  // namespace cleave::aggregator
