#include "aggregator/fedopt.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "aggregator/aggregation.h"

namespace cleave::aggregator {
namespace {

const std::string kFirstMoment = "m/";
const std::string kSecondMoment = "v/";
const std::string kStep = "step";

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

FedOpt::FedOpt(const FedOptOptions& options, int local_steps)
    : Strategy(ClientConfig{0.0, local_steps}), options_(options) {
  options_.validate();
}

void FedOpt::start_moments(const NamedTensors& global) {
  for (const auto& [name, weights] : global) {
    m_[name] = at::zeros_like(weights, weights.options().dtype(at::kFloat));
    v_[name] = at::full_like(weights, options_.tau * options_.tau, weights.options().dtype(at::kFloat));
  }
}

void FedOpt::require_moments_fit(const NamedTensors& global) const {
  for (const auto& [tensor_name, weights] : global) {
    auto m = m_.find(tensor_name);
    if (m == m_.end() || m->second.sizes() != weights.sizes()) {
      throw std::invalid_argument(
          "strategy " + name() + ": the server optimizer's moments do not cover tensor " + tensor_name +
          " with its current shape; was the restored state saved for other adapters?");
    }
  }
  if (m_.size() != global.size()) {
    throw std::invalid_argument("strategy " + name() + ": the server optimizer has moments for " +
                                std::to_string(m_.size()) + " tensors but the global adapters have " +
                                std::to_string(global.size()) +
                                "; was the restored state saved for other adapters?");
  }
}

NamedTensors FedOpt::aggregate(int round, const NamedTensors& global,
                               const std::vector<ClientUpdate>& updates) {
  require_valid(round, global, updates);
  if (m_.empty()) start_moments(global);
  require_moments_fit(global);
  const NamedTensors pseudo_gradient = weighted_mean(updates);
  const double beta1 = options_.beta1;
  NamedTensors updated;
  for (const auto& [name, weights] : global) {
    const at::Tensor d = pseudo_gradient.at(name).to(at::kFloat);
    at::Tensor m = m_.at(name) * beta1 + d * (1.0 - beta1);
    at::Tensor v = next_second_moment(v_.at(name), d * d);
    const at::Tensor server_step = m * options_.eta / (at::sqrt(v) + options_.tau);
    updated[name] = weights + server_step.to(weights.scalar_type());
    m_[name] = m;
    v_[name] = v;
  }
  ++step_;
  return updated;
}

NamedTensors FedOpt::state() const {
  NamedTensors state;
  for (const auto& [name, m] : m_) state[kFirstMoment + name] = m.clone();
  for (const auto& [name, v] : v_) state[kSecondMoment + name] = v.clone();
  state[kStep] = at::scalar_tensor(step_, at::kLong);
  return state;
}

void FedOpt::load_state(const NamedTensors& state) {
  const std::string who = "strategy " + name() + ": cannot load state: ";
  auto step = state.find(kStep);
  if (step == state.end() || !step->second.defined() || step->second.numel() != 1 ||
      step->second.scalar_type() != at::kLong) {
    throw std::invalid_argument(who +
                                "no int64 scalar \"step\"; was it saved by a server-optimizer strategy?");
  }
  NamedTensors m, v;
  for (const auto& [key, tensor] : state) {
    if (key == kStep) continue;
    NamedTensors* target = starts_with(key, kFirstMoment)    ? &m
                           : starts_with(key, kSecondMoment) ? &v
                                                             : nullptr;
    if (!target) {
      throw std::invalid_argument(who + "unexpected tensor \"" + key +
                                  "\" (expected \"m/<name>\", \"v/<name>\" and \"step\")");
    }
    if (!tensor.defined() || tensor.scalar_type() != at::kFloat) {
      throw std::invalid_argument(who + "moment \"" + key + "\" is not a float32 tensor");
    }
    (*target)[key.substr(2)] = tensor.clone();
  }
  for (const auto& [name, first] : m) {
    auto second = v.find(name);
    if (second == v.end() || second->second.sizes() != first.sizes()) {
      throw std::invalid_argument(who + "first moment of " + name +
                                  " has no second moment of the same shape");
    }
  }
  if (m.size() != v.size()) {
    throw std::invalid_argument(who + std::to_string(m.size()) + " first moments but " +
                                std::to_string(v.size()) + " second moments");
  }
  m_ = std::move(m);
  v_ = std::move(v);
  step_ = step->second.item<int64_t>();
}

FedAdam::FedAdam(const FedOptOptions& options, int local_steps) : FedOpt(options, local_steps) {}

std::string FedAdam::name() const { return "fedadam"; }

at::Tensor FedAdam::next_second_moment(const at::Tensor& v, const at::Tensor& d_squared) const {
  return v * options_.beta2 + d_squared * (1.0 - options_.beta2);
}

FedYogi::FedYogi(const FedOptOptions& options, int local_steps) : FedOpt(options, local_steps) {}

std::string FedYogi::name() const { return "fedyogi"; }

at::Tensor FedYogi::next_second_moment(const at::Tensor& v, const at::Tensor& d_squared) const {
  return v - d_squared * at::sign(v - d_squared) * (1.0 - options_.beta2);
}

}  // namespace cleave::aggregator
