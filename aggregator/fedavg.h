// FedAvg and FedProx: the new global is the global plus the sample-weighted
// mean of the client deltas. FedProx differs only on the client side (the
// proximal term it asks clients to add, via configure()).
#pragma once

#include "aggregator/strategy.h"

namespace cleave::aggregator {

class FedAvg : public Strategy {
 public:
  explicit FedAvg(int local_steps = 0);
  std::string name() const override;
  NamedTensors aggregate(int round, const NamedTensors& global,
                         const std::vector<ClientUpdate>& updates) override;

 protected:
  explicit FedAvg(ClientConfig client_config) : Strategy(client_config) {}
};

class FedProx : public FedAvg {
 public:
  explicit FedProx(const FedProxOptions& options, int local_steps = 0);
  std::string name() const override;
};

// global + delta per name, each delta cast to its global tensor's dtype.
NamedTensors apply_delta(const NamedTensors& global, const NamedTensors& delta);

}  // namespace cleave::aggregator
