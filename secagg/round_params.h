// What the aggregator announces with a round under secure aggregation (it
// travels inside aggregator::RoundAssignment), and the fixed-point encoding's
// overflow bound.
//
// Each site encodes its update as integers in Z_2^64: every coordinate x of
// its delta is clipped to [-clip_range, clip_range] and becomes
// round(w * x * 2^scale_bits), with w its weight (min(num_samples,
// weight_cap), or 1 under uniform weights); w itself is the vector's last
// word. The sum of n such vectors stays below 2^63 in magnitude, so it reads
// back as a signed integer without wrapping, whenever
//     n * weight_cap * clip_range * 2^scale_bits < 2^63       (fits_in_sum)
// and the mean it decodes is within n * 2^-(scale_bits + 1) / sum(w) <=
// 2^-(scale_bits + 1) of the exact weighted mean of the clipped deltas.
//
// The site's metrics (train loss, held-out perplexity...) follow the weight,
// so the aggregator learns only their weighted mean too: for each name in
// metric_names, round(w * clip(m, kMetricRange) * 2^metric_scale_bits) and
// w (0 and 0 when the site has no such metric). The same bound holds with
// kMetricRange for clip_range and metric_scale_bits for scale_bits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cleave::secagg {

struct RoundParams {
  bool enabled = false;
  uint32_t threshold = 0;                 // t: shares needed to unmask; rounds with fewer survivors fail
  std::vector<std::string> sampled;       // sorted; a site's share point is its position + 1
  int32_t scale_bits = 24;
  double clip_range = 4.0;
  int64_t weight_cap = 65536;
  bool uniform_weights = false;           // under DP: every site weighs 1
  double noise_stddev = 0;                // distributed DP: each site adds N(0, noise_stddev^2) per coordinate
  int64_t vector_length = 0;              // words in a masked input: adapter elements + 1 + 2 * metric_names
  std::vector<std::string> metric_names;  // sorted: the metrics summed under the masks
  int32_t metric_scale_bits = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(enabled, threshold, sampled, scale_bits, clip_range, weight_cap, uniform_weights, noise_stddev,
       vector_length, metric_names, metric_scale_bits);
  }
};

// Metrics are clipped to +/-2^24 before encoding (a perplexity or token count above is not a number to average).
constexpr double kMetricRange = 16777216.0;

// True when `sites` vectors of these parameters cannot overflow their sum.
bool fits_in_sum(int64_t sites, int64_t weight_cap, double clip_range, int32_t scale_bits);

// The share point (position + 1) of `client_id` in params.sampled, or 0 when it was not sampled.
uint32_t share_point(const RoundParams& params, const std::string& client_id);

}  // namespace cleave::secagg
