// What a client sends back after a round of local training, as the
// aggregation layer sees it (the wire format lives with the service).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

namespace cleave::aggregator {

// Adapter tensors keyed by name, e.g. "blk.0.attn_q.weight.lora_a" (float32).
using NamedTensors = std::map<std::string, at::Tensor>;

struct ClientUpdate {
  std::string client_id;
  // The client's local adapters minus the global adapters it started the round
  // from, one tensor per adapter name, each shaped like its global tensor
  // (at the site's rank: global_for_site in aggregation.h).
  NamedTensors delta;
  int64_t num_samples = 0;                // training examples behind the delta; FedAvg weight
  std::map<std::string, double> metrics;  // e.g. "train_loss"; passed through, never aggregated here
  // Under lora.aggregation product a site may train at a lower lora.rank or
  // another lora.alpha than the global adapters: its rank, and its LoRA scale
  // (alpha / rank) over the global's. 0 and 1: the global's rank and scale.
  int64_t lora_rank = 0;
  double lora_scale = 1.0;
};

}  // namespace cleave::aggregator
