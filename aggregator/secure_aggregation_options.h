// The options of secure aggregation (config section
// `aggregator.secure_aggregation:`); the protocol is in secagg/. No LibTorch here.
#pragma once

#include <cstdint>

namespace cleave::aggregator {

struct SecureAggregationOptions {
  bool enabled = false;
  // A round needs more than this share of its sampled sites until the end:
  // t = floor(threshold * n) + 1 of n. At 0.5 or more, no group smaller than
  // half the round can rebuild a site's secrets.
  double threshold = 0.5;
  int64_t min_sites = 3;              // rounds sampling fewer fail (a sum of one or two hides little)
  int64_t phase_timeout_ms = 60000;   // keys, shares and unmask phases each wait this long for sites
  int32_t scale_bits = 24;            // fixed point: a coordinate x is round(w x 2^scale_bits)
  double clip_range = 4.0;            // coordinates clipped to [-clip_range, clip_range] before encoding
  int64_t weight_cap = 65536;         // a site's weight: min(num_samples, weight_cap)

  // Throws std::invalid_argument naming "secure_aggregation.<field>"; checks
  // that a round of up to `max_sites` cannot overflow its fixed-point sum.
  void validate(int64_t max_sites) const;
  uint32_t threshold_for(int64_t sampled) const;
};

}  // namespace cleave::aggregator
