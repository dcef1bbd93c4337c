// The options of client-level differential privacy (config section
// `aggregator.dp:`); what they do is in aggregator/dp_fedavg.h. No LibTorch here.
#pragma once

#include <cstdint>

namespace cleave::aggregator {

struct DpOptions {
  bool enabled = false;
  double clip_norm = 0;          // C, > 0 when enabled
  // z; 0 with target_epsilon: the smallest z that keeps the planned rounds within it.
  double noise_multiplier = 0;
  // 0: no budget. Else the run stops before a round that would take epsilon above it.
  double target_epsilon = 0;
  double delta = 1e-5;           // in (0, 1); below 1 / (registered sites) for a meaningful guarantee
  // 0: noise seeded from the operating system (std::random_device). Set it
  // only for reproducible experiments: noise from a known seed protects nothing.
  uint64_t noise_seed = 0;
  // Where the noise is added (config dp.noise: central | distributed).
  // Central: the aggregator adds N(0, (z C)^2) to the sum. Distributed (needs
  // secure aggregation): each site adds N(0, (z C)^2 / t) before masking, t
  // the round's threshold, so any t survivors' sum carries at least the
  // full noise and the aggregator never sees a less noisy sum.
  bool distributed_noise = false;

  // Throws std::invalid_argument naming "dp.<field>".
  void validate() const;
};

}  // namespace cleave::aggregator
