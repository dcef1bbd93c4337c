// Client-level differential privacy for the aggregator: DP-FedAvg (McMahan,
// Ramage, Talwar and Zhang, "Learning Differentially Private Recurrent
// Language Models", ICLR 2018) with central Gaussian noise.
//
// Per round: every registered site takes part with probability q (Poisson
// sampling, aggregator.fraction); each participant's whole delta (all its
// adapters together) is clipped to L2 norm C (by the site, and again by the
// aggregator, so one site moves the sum by at most C whatever it sends);
// the aggregator adds N(0, (z C)^2) to every coordinate of the sum and
// divides by the expected number of participants q N, not by the number
// that reported (the fixed-denominator estimator with uniform weights: a
// site's sample count does not weigh, because it would leak). The strategy
// (FedAvg, FedProx's server side, FedAdam, FedYogi) then treats that noisy
// mean as the round's one update. The RDP accountant
// (privacy/rdp_accountant.h) tracks epsilon at dp.delta over the rounds run.
#pragma once

#include <ATen/core/Generator.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "aggregator/client_update.h"
#include "aggregator/dp_options.h"

namespace cleave::aggregator {

// One round's accounting state and noise. Not thread-safe (the service holds its lock).
class DpFedAvg {
 public:
  // `sampling_rate` is q; `planned_rounds` calibrates z from target_epsilon.
  DpFedAvg(DpOptions options, double sampling_rate, int64_t planned_rounds);

  double noise_multiplier() const { return noise_multiplier_; }
  double sampling_rate() const { return sampling_rate_; }
  const DpOptions& options() const { return options_; }

  // The round's one update: (sum_k clip(delta_k, C) + N(0, (z C)^2)) / (q * registered),
  // shaped like `global`. `updates` may be empty (noise only).
  ClientUpdate noisy_mean(const std::vector<ClientUpdate>& updates, const NamedTensors& global,
                          int64_t registered);
  // The same from a sum the aggregator learned through secure aggregation (the
  // sites clipped their deltas): (sum + noise) / (q * registered), with the
  // noise left out when the sites added it (options.distributed_noise).
  ClientUpdate noisy_mean_of_sum(NamedTensors sum, const NamedTensors& global, int64_t registered);

  // Epsilon at options.delta after the rounds accounted so far, and what one
  // more round would make it.
  double epsilon() const;
  double epsilon_after_next_round() const;
  void account_round();
  int64_t rounds_accounted() const { return rounds_; }

  // For checkpoints: the RDP per order (privacy::default_orders()) so far.
  const std::vector<double>& rdp() const { return rdp_; }
  // Throws std::runtime_error when `rdp` does not fit the orders.
  void restore(const std::vector<double>& rdp, int64_t rounds);

 private:
  ClientUpdate finish(NamedTensors sum, const NamedTensors& global, int64_t registered, bool add_noise);

  DpOptions options_;
  double sampling_rate_;
  double noise_multiplier_;
  std::vector<double> orders_, rdp_, rdp_per_round_;
  int64_t rounds_ = 0;
  at::Generator generator_;
};

}  // namespace cleave::aggregator
