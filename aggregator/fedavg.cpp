#include "aggregator/fedavg.h"

#include <ATen/ATen.h>

#include "aggregator/aggregation.h"
#include "lora/product_mean.h"

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

FedAvg::FedAvg(int local_steps, lora::LoraAggregation lora_aggregation)
    : FedAvg(ClientConfig{0.0, local_steps}, lora_aggregation) {}

std::string FedAvg::name() const { return "fedavg"; }

NamedTensors FedAvg::aggregate(int round, const NamedTensors& global,
                               const std::vector<ClientUpdate>& updates) {
  require_valid(round, global, updates);
  if (lora_aggregation_ != lora::LoraAggregation::product) return apply_delta(global, weighted_mean(updates));
  // Each site's own adapters (the global at its rank + its delta), weighted
  // by its samples; its product counts with its LoRA scale over the global's.
  std::vector<NamedTensors> sites;
  std::vector<const NamedTensors*> site_pointers;
  std::vector<double> weights, scales;
  sites.reserve(updates.size());
  for (const ClientUpdate& update : updates) {
    sites.push_back(apply_delta(global_for_site(global, update.lora_rank, update.lora_scale), update.delta));
    weights.push_back(static_cast<double>(update.num_samples));
    scales.push_back(update.lora_scale);
  }
  for (const NamedTensors& site : sites) site_pointers.push_back(&site);
  int64_t rank = 0;
  for (const auto& [name, tensor] : global) {
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".lora_a") == 0) rank = tensor.size(0);
  }
  lora::ProductMean mean = lora::product_mean(site_pointers, weights, rank, scales);
  truncation_error_ = mean.truncation_error;
  return std::move(mean.adapters);
}

FedProx::FedProx(const FedProxOptions& options, int local_steps, lora::LoraAggregation lora_aggregation)
    : FedAvg(fedprox_client_config(options, local_steps), lora_aggregation) {}

std::string FedProx::name() const { return "fedprox"; }

}  // namespace cleave::aggregator
