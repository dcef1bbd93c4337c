#include "aggregator/dp_fedavg.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <random>
#include <stdexcept>

#include "aggregator/aggregation.h"
#include "privacy/rdp_accountant.h"

namespace cleave::aggregator {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

uint64_t seed_from(uint64_t configured) {
  if (configured != 0) return configured;
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

}  // namespace

void DpOptions::validate() const {
  if (!enabled) return;
  require(std::isfinite(clip_norm) && clip_norm > 0,
          "dp.clip_norm must be finite and > 0 (the L2 norm every site's delta is clipped to), got " +
              std::to_string(clip_norm));
  require(std::isfinite(noise_multiplier) && noise_multiplier >= 0,
          "dp.noise_multiplier must be finite and >= 0, got " + std::to_string(noise_multiplier));
  require(target_epsilon >= 0 && std::isfinite(target_epsilon),
          "dp.target_epsilon must be finite and >= 0 (0: no budget), got " + std::to_string(target_epsilon));
  require(noise_multiplier > 0 || target_epsilon > 0,
          "dp: set dp.noise_multiplier, or dp.target_epsilon to calibrate it for the planned rounds");
  require(delta > 0 && delta < 1, "dp.delta must be in (0, 1), got " + std::to_string(delta));
}

DpFedAvg::DpFedAvg(DpOptions options, double sampling_rate, int64_t planned_rounds)
    : options_(options),
      sampling_rate_(sampling_rate),
      orders_(privacy::default_orders()),
      generator_(at::make_generator<at::CPUGeneratorImpl>(seed_from(options.noise_seed))) {
  options_.validate();
  require(sampling_rate > 0 && sampling_rate <= 1,
          "dp: the sampling rate (aggregator.fraction) must be in (0, 1], got " + std::to_string(sampling_rate));
  noise_multiplier_ = options_.noise_multiplier > 0
                          ? options_.noise_multiplier
                          : privacy::noise_for_epsilon(sampling_rate, options_.target_epsilon, planned_rounds,
                                                       options_.delta, orders_);
  rdp_.assign(orders_.size(), 0.0);
  for (double order : orders_) {
    rdp_per_round_.push_back(privacy::subsampled_gaussian_rdp(sampling_rate_, noise_multiplier_, 1, order));
  }
}

ClientUpdate DpFedAvg::noisy_mean(const std::vector<ClientUpdate>& updates, const NamedTensors& global,
                                  int64_t registered) {
  NamedTensors sum;   // float64 while summing
  for (const auto& [name, tensor] : global) sum[name] = at::zeros(tensor.sizes(), at::kDouble);
  for (const ClientUpdate& update : updates) {
    const ClippedDelta clipped = clip_by_norm(update.delta, options_.clip_norm);
    for (auto& [name, acc] : sum) acc.add_(clipped.delta.at(name).to(at::kDouble));
  }
  return finish(std::move(sum), global, registered, true);
}

ClientUpdate DpFedAvg::noisy_mean_of_sum(NamedTensors sum, const NamedTensors& global, int64_t registered) {
  return finish(std::move(sum), global, registered, !options_.distributed_noise);
}

ClientUpdate DpFedAvg::finish(NamedTensors sum, const NamedTensors& global, int64_t registered, bool add_noise) {
  require(registered > 0, "dp: no registered sites");
  const double expected = sampling_rate_ * static_cast<double>(registered);
  const double stddev = noise_multiplier_ * options_.clip_norm;
  ClientUpdate mean;
  mean.client_id = "dp-fedavg";
  mean.num_samples = 1;
  for (auto& [name, acc] : sum) {
    at::Tensor total = acc.to(at::kDouble);
    if (add_noise) {
      total = total + at::normal(0.0, stddev, total.sizes(), generator_, at::TensorOptions().dtype(at::kDouble));
    }
    mean.delta[name] = (total / expected).to(global.at(name).scalar_type()).contiguous();
  }
  return mean;
}

double DpFedAvg::epsilon() const {
  if (rounds_ == 0) return 0;
  return privacy::epsilon_from_rdp(orders_, rdp_, options_.delta).epsilon;
}

double DpFedAvg::epsilon_after_next_round() const {
  std::vector<double> next = rdp_;
  for (size_t i = 0; i < next.size(); ++i) next[i] += rdp_per_round_[i];
  return privacy::epsilon_from_rdp(orders_, next, options_.delta).epsilon;
}

void DpFedAvg::account_round() {
  for (size_t i = 0; i < rdp_.size(); ++i) rdp_[i] += rdp_per_round_[i];
  ++rounds_;
}

void DpFedAvg::restore(const std::vector<double>& rdp, int64_t rounds) {
  if (rdp.size() != orders_.size()) {
    throw std::runtime_error("the checkpoint's privacy accounting has " + std::to_string(rdp.size()) +
                             " RDP orders, this cleave " + std::to_string(orders_.size()));
  }
  rdp_ = rdp;
  rounds_ = rounds;
}

}  // namespace cleave::aggregator
