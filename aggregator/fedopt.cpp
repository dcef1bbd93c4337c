#include "aggregator/fedopt.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "aggregator/aggregation.h"

namespace cleave::aggregator {
namespace {

const std::string kStep = "step";

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

void ServerMoments::start_or_check(const NamedTensors& global) {
  if (moments_.empty()) {
    for (const Moment& kind : kinds_) {
      NamedTensors& started = moments_.emplace_back();
      for (const auto& [name, weights] : global) {
        started[name] = at::full_like(weights, kind.initial, weights.options().dtype(at::kFloat));
      }
    }
  }
  const NamedTensors& first = moments_.front();
  for (const auto& [tensor_name, weights] : global) {
    auto m = first.find(tensor_name);
    if (m == first.end() || m->second.sizes() != weights.sizes()) {
      throw std::invalid_argument(
          "strategy " + strategy_ + ": the server optimizer's moments do not cover tensor " + tensor_name +
          " with its current shape; was the restored state saved for other adapters?");
    }
  }
  if (first.size() != global.size()) {
    throw std::invalid_argument("strategy " + strategy_ + ": the server optimizer has moments for " +
                                std::to_string(first.size()) + " tensors but the global adapters have " +
                                std::to_string(global.size()) +
                                "; was the restored state saved for other adapters?");
  }
}

NamedTensors ServerMoments::state() const {
  NamedTensors state;
  for (size_t k = 0; k < moments_.size(); ++k) {
    for (const auto& [name, moment] : moments_[k]) state[kinds_[k].prefix + name] = moment.clone();
  }
  state[kStep] = at::scalar_tensor(step_, at::kLong);
  return state;
}

void ServerMoments::load_state(const NamedTensors& state) {
  const std::string who = "strategy " + strategy_ + ": cannot load state: ";
  std::string expected;
  for (const Moment& kind : kinds_) expected += "\"" + kind.prefix + "<name>\", ";
  auto step = state.find(kStep);
  if (step == state.end() || !step->second.defined() || step->second.numel() != 1 ||
      step->second.scalar_type() != at::kLong) {
    throw std::invalid_argument(who + "no int64 scalar \"step\"; was it saved by a server-optimizer strategy?");
  }
  std::vector<NamedTensors> moments(kinds_.size());
  for (const auto& [key, tensor] : state) {
    if (key == kStep) continue;
    size_t k = 0;
    while (k < kinds_.size() && !starts_with(key, kinds_[k].prefix)) ++k;
    if (k == kinds_.size()) {
      throw std::invalid_argument(who + "unexpected tensor \"" + key + "\" (expected " + expected + "and \"step\")");
    }
    if (!tensor.defined() || tensor.scalar_type() != at::kFloat) {
      throw std::invalid_argument(who + "moment \"" + key + "\" is not a float32 tensor");
    }
    moments[k][key.substr(kinds_[k].prefix.size())] = tensor.clone();
  }
  for (size_t k = 1; k < moments.size(); ++k) {
    for (const auto& [name, first] : moments.front()) {
      auto other = moments[k].find(name);
      if (other == moments[k].end() || other->second.sizes() != first.sizes()) {
        throw std::invalid_argument(who + "moment \"" + kinds_.front().prefix + name + "\" has no \"" +
                                    kinds_[k].prefix + name + "\" of the same shape");
      }
    }
    if (moments[k].size() != moments.front().size()) {
      throw std::invalid_argument(who + std::to_string(moments.front().size()) + " \"" + kinds_.front().prefix +
                                  "\" moments but " + std::to_string(moments[k].size()) + " \"" + kinds_[k].prefix +
                                  "\" moments");
    }
  }
  // A state saved before any round has no moments: the first round starts them.
  if (moments.front().empty()) moments.clear();
  moments_ = std::move(moments);
  step_ = step->second.item<int64_t>();
}

FedAvgM::FedAvgM(const FedAvgMOptions& options, int local_steps)
    : Strategy(ClientConfig{0.0, local_steps}), options_(options), momentum_("fedavgm", {{"m/", 0.0}}) {
  options_.validate();
}

std::string FedAvgM::name() const { return "fedavgm"; }

NamedTensors FedAvgM::aggregate(int round, const NamedTensors& global, const std::vector<ClientUpdate>& updates) {
  require_valid(round, global, updates);
  momentum_.start_or_check(global);
  const NamedTensors pseudo_gradient = weighted_mean(updates);
  NamedTensors updated;
  for (const auto& [name, weights] : global) {
    at::Tensor& m = momentum_.moment(0, name);
    m = m * options_.momentum + pseudo_gradient.at(name).to(at::kFloat);
    updated[name] = weights + (m * options_.eta).to(weights.scalar_type());
  }
  momentum_.count_round();
  return updated;
}

FedOpt::FedOpt(const FedOptOptions& options, int local_steps, const std::string& name)
    : Strategy(ClientConfig{0.0, local_steps}),
      options_(options),
      moments_(name, {{"m/", 0.0}, {"v/", options.tau * options.tau}}) {
  options_.validate();
}

NamedTensors FedOpt::aggregate(int round, const NamedTensors& global,
                               const std::vector<ClientUpdate>& updates) {
  require_valid(round, global, updates);
  moments_.start_or_check(global);
  const NamedTensors pseudo_gradient = weighted_mean(updates);
  const double beta1 = options_.beta1;
  NamedTensors updated;
  for (const auto& [name, weights] : global) {
    const at::Tensor d = pseudo_gradient.at(name).to(at::kFloat);
    at::Tensor& m = moments_.moment(0, name);
    at::Tensor& v = moments_.moment(1, name);
    m = m * beta1 + d * (1.0 - beta1);
    v = next_second_moment(v, d * d);
    const at::Tensor server_step = m * options_.eta / (at::sqrt(v) + options_.tau);
    updated[name] = weights + server_step.to(weights.scalar_type());
  }
  moments_.count_round();
  return updated;
}

NamedTensors FedOpt::state() const { return moments_.state(); }

void FedOpt::load_state(const NamedTensors& state) { moments_.load_state(state); }

FedAdam::FedAdam(const FedOptOptions& options, int local_steps) : FedOpt(options, local_steps, "fedadam") {}

std::string FedAdam::name() const { return "fedadam"; }

at::Tensor FedAdam::next_second_moment(const at::Tensor& v, const at::Tensor& d_squared) const {
  return v * options_.beta2 + d_squared * (1.0 - options_.beta2);
}

FedYogi::FedYogi(const FedOptOptions& options, int local_steps) : FedOpt(options, local_steps, "fedyogi") {}

std::string FedYogi::name() const { return "fedyogi"; }

at::Tensor FedYogi::next_second_moment(const at::Tensor& v, const at::Tensor& d_squared) const {
  return v - d_squared * at::sign(v - d_squared) * (1.0 - options_.beta2);
}

}  // namespace cleave::aggregator
