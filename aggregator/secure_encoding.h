// A site's update as the fixed-point vector secure aggregation masks, and the
// unmasked sum back as tensors (the encoding and its bound:
// secagg/round_params.h). Layout: the adapter tensors in name order, each
// flattened, then the weight.
#pragma once

#include <cstdint>
#include <vector>

#include "aggregator/client_update.h"
#include "secagg/round_params.h"

namespace cleave::aggregator {

// Words in a masked input for adapters shaped like `like`: their elements + 1.
int64_t secure_vector_length(const NamedTensors& like);

struct EncodedUpdate {
  std::vector<uint64_t> words;       // secure_vector_length(delta) words
  int64_t weight = 0;                // the weight encoded
  int64_t clipped = 0;               // coordinates that were outside [-clip_range, clip_range]
};

// Encodes weight * clip(delta) with the round's scale; weight is
// min(num_samples, weight_cap), or 1 under uniform weights.
EncodedUpdate encode_update(const NamedTensors& delta, int64_t num_samples, const secagg::RoundParams& params);

struct DecodedSum {
  NamedTensors weighted_sum;         // sum of w * delta, float64, shaped like `like`
  int64_t total_weight = 0;          // sum of w
};

// Reads the unmasked sum as signed integers. Throws std::invalid_argument on
// a wrong length or a total weight that is not positive.
DecodedSum decode_sum(const std::vector<uint64_t>& sum, const NamedTensors& like, const secagg::RoundParams& params);

}  // namespace cleave::aggregator
