#include "aggregator/aggregation.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "lora/product_mean.h"

namespace cleave::aggregator {
namespace {

std::string shape_string(at::IntArrayRef sizes) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < sizes.size(); ++i) out << (i ? ", " : "") << sizes[i];
  out << ']';
  return out.str();
}

std::string client_label(const ClientUpdate& update) {
  return update.client_id.empty() ? std::string("<unnamed client>") : update.client_id;
}

// Throws unless there is at least one update and all have the first one's
// tensor names and shapes.
void require_same_layout(const std::vector<ClientUpdate>& updates, const char* what) {
  if (updates.empty()) {
    throw std::invalid_argument(std::string(what) + ": no client updates to aggregate");
  }
  const ClientUpdate& first = updates.front();
  for (const ClientUpdate& update : updates) {
    if (update.delta.size() != first.delta.size()) {
      throw std::invalid_argument(std::string(what) + ": client " + client_label(update) + " sent " +
                                  std::to_string(update.delta.size()) + " tensors but client " +
                                  client_label(first) + " sent " + std::to_string(first.delta.size()) +
                                  "; run validate_update on each update first");
    }
    for (const auto& [name, tensor] : first.delta) {
      auto it = update.delta.find(name);
      if (it == update.delta.end()) {
        throw std::invalid_argument(std::string(what) + ": client " + client_label(update) +
                                    " has no tensor " + name + "; run validate_update first");
      }
      if (!it->second.defined() || !tensor.defined() || it->second.sizes() != tensor.sizes()) {
        throw std::invalid_argument(std::string(what) + ": tensor " + name + " of client " +
                                    client_label(update) + " is not shaped like client " +
                                    client_label(first) + "'s " +
                                    (tensor.defined() ? shape_string(tensor.sizes()) : "(undefined)") +
                                    "; run validate_update first");
      }
    }
  }
}

// One adapter tensor from every client, stacked in float64: [clients, ...shape].
at::Tensor stack_clients(const std::vector<ClientUpdate>& updates, const std::string& name) {
  std::vector<at::Tensor> per_client;
  per_client.reserve(updates.size());
  for (const ClientUpdate& update : updates) {
    per_client.push_back(update.delta.at(name).to(at::kDouble));
  }
  return at::stack(per_client, 0);
}

template <typename Reduce>
NamedTensors per_coordinate(const std::vector<ClientUpdate>& updates, Reduce reduce) {
  NamedTensors result;
  for (const auto& [name, tensor] : updates.front().delta) {
    at::Tensor sorted = std::get<0>(at::sort(stack_clients(updates, name), 0));  // [clients, ...shape]
    result[name] = reduce(sorted).to(tensor.scalar_type());
  }
  return result;
}

}  // namespace

NamedTensors weighted_mean(const std::vector<ClientUpdate>& updates) {
  require_same_layout(updates, "weighted_mean");
  double total_samples = 0.0;
  for (const ClientUpdate& update : updates) {
    if (update.num_samples <= 0) {
      throw std::invalid_argument("weighted_mean: client " + client_label(update) + " reports " +
                                  std::to_string(update.num_samples) +
                                  " samples; a FedAvg weight must be positive");
    }
    total_samples += static_cast<double>(update.num_samples);
  }
  NamedTensors result;
  for (const auto& [name, tensor] : updates.front().delta) {
    at::Tensor weighted_sum = at::zeros(tensor.sizes(), tensor.options().dtype(at::kDouble));
    for (const ClientUpdate& update : updates) {
      weighted_sum += update.delta.at(name).to(at::kDouble) * static_cast<double>(update.num_samples);
    }
    result[name] = (weighted_sum / total_samples).to(tensor.scalar_type());
  }
  return result;
}

NamedTensors coordinate_median(const std::vector<ClientUpdate>& updates) {
  require_same_layout(updates, "coordinate_median");
  const int64_t n = static_cast<int64_t>(updates.size());
  return per_coordinate(updates, [n](const at::Tensor& sorted) {
    if (n % 2 == 1) return sorted.select(0, n / 2);
    return (sorted.select(0, n / 2 - 1) + sorted.select(0, n / 2)) / 2.0;
  });
}

NamedTensors trimmed_mean(const std::vector<ClientUpdate>& updates, double trim_fraction) {
  if (!(trim_fraction >= 0.0 && trim_fraction < 0.5)) {
    throw std::invalid_argument("trimmed_mean: trim_fraction " + std::to_string(trim_fraction) +
                                " must lie in [0, 0.5) so at least one value per coordinate is kept");
  }
  require_same_layout(updates, "trimmed_mean");
  const int64_t n = static_cast<int64_t>(updates.size());
  const auto trimmed = static_cast<int64_t>(std::floor(trim_fraction * static_cast<double>(n)));
  return per_coordinate(updates, [n, trimmed](const at::Tensor& sorted) {
    return sorted.narrow(0, trimmed, n - 2 * trimmed).mean(0);
  });
}

double global_norm(const NamedTensors& delta) {
  double sum_squares = 0.0;
  for (const auto& [name, tensor] : delta) {
    if (!tensor.defined()) {
      throw std::invalid_argument("global_norm: tensor " + name + " is undefined");
    }
    sum_squares += tensor.to(at::kDouble).square().sum().item<double>();
  }
  return std::sqrt(sum_squares);
}

ClippedDelta clip_by_norm(const NamedTensors& delta, double max_norm) {
  if (!(std::isfinite(max_norm) && max_norm > 0.0)) {
    throw std::invalid_argument("clip_by_norm: max_norm " + std::to_string(max_norm) +
                                " must be finite and > 0");
  }
  ClippedDelta clipped{delta, global_norm(delta)};
  if (!std::isfinite(clipped.norm)) {
    throw std::invalid_argument(
        "clip_by_norm: the delta's norm is not finite (NaN or Inf in it); "
        "reject it with validate_update before clipping");
  }
  if (clipped.norm > max_norm) {
    const double scale = max_norm / clipped.norm;
    for (auto& [name, tensor] : clipped.delta) {
      tensor = (tensor.to(at::kDouble) * scale).to(tensor.scalar_type());
    }
  }
  return clipped;
}

NamedTensors global_for_site(const NamedTensors& global, int64_t lora_rank, double lora_scale) {
  if (lora_rank == 0 && lora_scale == 1.0) return global;
  const int64_t rank = lora_rank != 0 ? lora_rank : lora::rank_of(global);
  return lora::truncate_to_rank(global, rank, 1.0 / lora_scale);
}

std::optional<std::string> validate_update(const ClientUpdate& update, const NamedTensors& reference) {
  const std::string who = "update from client " + client_label(update);
  if (update.num_samples <= 0) {
    return who + " reports " + std::to_string(update.num_samples) +
           " training samples; it must be > 0 to weigh the update";
  }
  std::string missing;
  for (const auto& [name, tensor] : reference) {
    if (!update.delta.count(name)) missing += (missing.empty() ? "" : ", ") + name;
  }
  std::string extra;
  for (const auto& [name, tensor] : update.delta) {
    if (!reference.count(name)) extra += (extra.empty() ? "" : ", ") + name;
  }
  if (!missing.empty() || !extra.empty()) {
    std::string message = who + " does not match the global adapters:";
    if (!missing.empty()) message += " missing tensors " + missing + ";";
    if (!extra.empty()) message += " unexpected tensors " + extra + ";";
    return message + " was it trained with the same LoRA targets and model?";
  }
  for (const auto& [name, expected] : reference) {
    const at::Tensor& tensor = update.delta.at(name);
    if (!tensor.defined()) return who + ": tensor " + name + " is empty (undefined)";
    if (!at::isFloatingType(tensor.scalar_type())) {
      return who + ": tensor " + name + " has dtype " + std::string(at::toString(tensor.scalar_type())) +
             ", expected a floating-point tensor (float32)";
    }
    if (tensor.sizes() != expected.sizes()) {
      return who + ": tensor " + name + " has shape " + shape_string(tensor.sizes()) + ", expected " +
             shape_string(expected.sizes()) + "; was it trained with the same LoRA rank and model?";
    }
    if (!at::isfinite(tensor).all().item<bool>()) {
      return who + ": tensor " + name + " contains NaN or Inf; the client's training diverged";
    }
  }
  return std::nullopt;
}

std::optional<std::string> trained_frozen_a(const ClientUpdate& update) {
  for (const auto& [name, delta] : update.delta) {
    if (lora::is_lora_a(name) && delta.defined() && delta.abs().max().item<double>() != 0.0) {
      return "update from client " + client_label(update) + ": tensor " + name +
             " changed, but lora.aggregation is ffa (A frozen at its shared initialisation); set lora.aggregation: "
             "ffa at the site too";
    }
  }
  return std::nullopt;
}

void keep_frozen_a(const NamedTensors& global, NamedTensors& next) {
  for (auto& [name, tensor] : next) {
    if (lora::is_lora_a(name)) tensor = global.at(name).clone();
  }
}

}  // namespace cleave::aggregator
