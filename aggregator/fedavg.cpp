#include "aggregator/fedavg.h"

#include <ATen/ATen.h>

#include "aggregator/aggregation.h"

namespace cleave::aggregator {
namespace {

ClientConfig fedprox_client_config(const FedProxOptions& options, int local_steps) {
  options.validate();
  return ClientConfig{options.proximal_mu, local_steps};
}

}  // namespace

NamedTensors apply_delta(const NamedTensors& global, const NamedTensors& delta) {
  NamedTensors updated;
  for (const auto& [name, weights] : global) {
    updated[name] = weights + delta.at(name).to(weights.scalar_type());
  }
  return updated;
}

FedAvg::FedAvg(int local_steps) : Strategy(ClientConfig{0.0, local_steps}) {}

std::string FedAvg::name() const { return "fedavg"; }

NamedTensors FedAvg::aggregate(int round, const NamedTensors& global,
                               const std::vector<ClientUpdate>& updates) {
  require_valid(round, global, updates);
  return apply_delta(global, weighted_mean(updates));
}

FedProx::FedProx(const FedProxOptions& options, int local_steps)
    : FedAvg(fedprox_client_config(options, local_steps)) {}

std::string FedProx::name() const { return "fedprox"; }

}  // namespace cleave::aggregator
