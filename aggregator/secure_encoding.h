// A site's update as the fixed-point vector secure aggregation masks, and the
// unmasked sum back as tensors (the encoding and its bound:
// secagg/round_params.h). Layout: the adapter tensors in name order, each
// flattened, then the weight, then for each of the round's metric names the
// weighted metric and its weight.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "aggregator/client_update.h"
#include "secagg/round_params.h"

namespace cleave::aggregator {

// The metrics a site reports with its update (FederatedClient), sorted: under
// secure aggregation they travel masked, and the aggregator learns their mean.
const std::vector<std::string>& secure_metric_names();

// Words in a masked input for adapters shaped like `like` and `metrics`
// metric names: their elements + 1 + 2 * metrics.
int64_t secure_vector_length(const NamedTensors& like, size_t metrics);

// The finest metric scale (at most 2^-16) at which the metrics of `sites`
// sites of weight up to `weight_cap` cannot overflow their sum.
int32_t metric_scale_bits_for(int64_t sites, int64_t weight_cap);

struct EncodedUpdate {
  std::vector<uint64_t> words;       // params.vector_length words
  int64_t weight = 0;                // the weight encoded
  int64_t clipped = 0;               // coordinates that were outside [-clip_range, clip_range]
};

// Encodes weight * clip(delta) with the round's scale, and weight * clip(m)
// for each of params.metric_names that `metrics` holds (other metrics are
// not sent); weight is min(num_samples, weight_cap), or 1 under uniform
// weights. Throws std::invalid_argument when the words would not be
// params.vector_length.
EncodedUpdate encode_update(const NamedTensors& delta, int64_t num_samples, const std::map<std::string, double>& metrics,
                            const secagg::RoundParams& params);

struct DecodedSum {
  NamedTensors weighted_sum;         // sum of w * delta, float64, shaped like `like`
  int64_t total_weight = 0;          // sum of w
  std::map<std::string, double> metrics;   // weighted mean of each metric some site reported
};

// Reads the unmasked sum as signed integers. Throws std::invalid_argument on
// a wrong length or a total weight that is not positive.
DecodedSum decode_sum(const std::vector<uint64_t>& sum, const NamedTensors& like, const secagg::RoundParams& params);

}  // namespace cleave::aggregator
