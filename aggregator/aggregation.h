// The arithmetic of federated aggregation as pure functions over adapter
// deltas: no state, no I/O, inputs never modified. The strategies
// (strategy.h) are built from these; the round loop calls the strategies.
//
// All functions work in float64 internally and return tensors with the dtype
// of the first update's tensor of the same name. They throw
// std::invalid_argument when given no updates or updates whose tensor names
// or shapes disagree; run validate_update first to drop bad updates instead.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "aggregator/client_update.h"

namespace cleave::aggregator {

// FedAvg (McMahan et al. 2017): sum_i n_i * delta_i / sum_i n_i, with n_i the
// update's num_samples.
NamedTensors weighted_mean(const std::vector<ClientUpdate>& updates);

// Per coordinate, the median over clients (the mean of the two middle values
// for an even count). Unweighted: a client's sample count buys it no extra
// say, which is the point of a robust aggregate.
NamedTensors coordinate_median(const std::vector<ClientUpdate>& updates);

// Per coordinate, drop the floor(trim_fraction * n) smallest and largest
// values over the n clients and average the rest (Yin et al. 2018).
// Unweighted. trim_fraction must lie in [0, 0.5).
NamedTensors trimmed_mean(const std::vector<ClientUpdate>& updates, double trim_fraction);

// Global L2 norm over every tensor of one delta (as if flattened and
// concatenated), computed in float64.
double global_norm(const NamedTensors& delta);

struct ClippedDelta {
  NamedTensors delta;  // scaled to global norm max_norm if it was longer; else the input tensors, shared
  double norm = 0.0;   // global norm of the input delta, before clipping
};

// Scales a whole delta by max_norm / norm when its global norm exceeds
// max_norm (direction kept). Throws std::invalid_argument unless max_norm is
// finite and > 0, or if the delta's norm is not finite.
ClippedDelta clip_by_norm(const NamedTensors& delta, double max_norm);

// The global adapters as a site of LoRA rank `lora_rank` and relative scale
// `lora_scale` (ClientUpdate's fields) starts its round from: `global`
// itself for rank 0 (the global's) and scale 1, else lora::truncate_to_rank
// to that rank, expressed in the site's scale. The aggregator hands sites
// these and checks and rebuilds their updates against them.
NamedTensors global_for_site(const NamedTensors& global, int64_t lora_rank, double lora_scale);

// Why `update` cannot be aggregated against `reference` (the global adapters
// it claims to be a delta of), or nullopt if it can. Checks: num_samples > 0;
// exactly the reference's tensor names (missing and extra are named); each
// tensor defined, floating-point, shaped like its reference; no NaN or Inf.
// The message names the client and the offending tensor.
std::optional<std::string> validate_update(const ClientUpdate& update, const NamedTensors& reference);

// Under lora.aggregation ffa (A frozen at every site): why `update` cannot be
// aggregated because it changed a "<base>.lora_a" tensor, or nullopt.
std::optional<std::string> trained_frozen_a(const ClientUpdate& update);

// Under lora.aggregation ffa: sets every "<base>.lora_a" of `next` back to
// `global`'s (a copy), so no strategy or noise moves A.
void keep_frozen_a(const NamedTensors& global, NamedTensors& next);

}  // namespace cleave::aggregator
