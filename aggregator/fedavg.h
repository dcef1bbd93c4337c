// FedAvg and FedProx: the new global is the global plus the sample-weighted
// mean of the client deltas. FedProx differs only on the client side (the
// proximal term it asks clients to add, via configure()). Under
// lora.aggregation product the new global is instead the sample-weighted mean
// of the sites' products B_i A_i, re-factored to the global's rank
// (lora::product_mean); a site at a lower rank or another alpha (heterogeneous
// ranks) counts with its own adapters (the global at its rank plus its
// delta) and its LoRA scale, s_i B_i A_i / s.
#pragma once

#include "aggregator/strategy.h"

namespace cleave::aggregator {

class FedAvg : public Strategy {
 public:
  explicit FedAvg(int local_steps = 0,
                  lora::LoraAggregation lora_aggregation = lora::LoraAggregation::separate);
  std::string name() const override;
  NamedTensors aggregate(int round, const NamedTensors& global,
                         const std::vector<ClientUpdate>& updates) override;
  std::optional<double> lora_truncation_error() const override { return truncation_error_; }

 protected:
  FedAvg(ClientConfig client_config, lora::LoraAggregation lora_aggregation)
      : Strategy(client_config), lora_aggregation_(lora_aggregation) {}

 private:
  lora::LoraAggregation lora_aggregation_;
  std::optional<double> truncation_error_;
};

class FedProx : public FedAvg {
 public:
  explicit FedProx(const FedProxOptions& options, int local_steps = 0,
                   lora::LoraAggregation lora_aggregation = lora::LoraAggregation::separate);
  std::string name() const override;
};

// global + delta per name, each delta cast to its global tensor's dtype.
NamedTensors apply_delta(const NamedTensors& global, const NamedTensors& delta);

}  // namespace cleave::aggregator
