#include "aggregator/fedavg.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <optional>

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
  const int64_t rank = lora::rank_of(global);
  // A site at rank r < R held only the global's first r components (its
  // start was the truncation) and reports nothing of the rest; without the
  // rest its product would pull components r.. of the global towards zero
  // with its weight every round. Component j is kept with the share of the
  // weight of the sites that did not hold it (0 when every site is at R, so
  // equal ranks give exactly the mean of the products).
  std::vector<double> not_held(static_cast<size_t>(rank), 0.0);
  double weight_sum = 0;
  for (size_t k = 0; k < updates.size(); ++k) {
    const int64_t held = updates[k].lora_rank > 0 ? updates[k].lora_rank : rank;
    for (int64_t j = held; j < rank; ++j) not_held[static_cast<size_t>(j)] += weights[k];
    weight_sum += weights[k];
  }
  std::optional<NamedTensors> kept;
  if (std::any_of(not_held.begin(), not_held.end(), [](double w) { return w > 0; })) {
    const at::Tensor share = at::tensor(not_held, at::kDouble) / weight_sum;   // [R]
    kept.emplace();
    for (const auto& [name, tensor] : global) {
      (*kept)[name] = lora::is_lora_b(name) ? (tensor.to(at::kDouble) * share).to(at::kFloat) : tensor;   // B [out, R] column j * share_j
    }
  }
  lora::ProductMean mean =
      lora::product_mean(site_pointers, weights, rank, scales, kept ? &*kept : nullptr);
  truncation_error_ = mean.truncation_error;
  return std::move(mean.adapters);
}

FedProx::FedProx(const FedProxOptions& options, int local_steps, lora::LoraAggregation lora_aggregation)
    : FedAvg(fedprox_client_config(options, local_steps), lora_aggregation) {}

std::string FedProx::name() const { return "fedprox"; }

}  // namespace cleave::aggregator
