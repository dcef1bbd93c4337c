// Server-optimizer strategies. The pseudo-gradient of a round is the
// sample-weighted mean client delta d.
//
// FedAvgM (Hsu, Qi and Brown 2019, arXiv:1909.06335; server SGD with
// momentum), per coordinate
//   m = momentum m + d
//   x = x + eta m
// with m starting at 0: eta 1, momentum 0 is FedAvg.
//
// FedAdam and FedYogi (Reddi et al. 2021, "Adaptive Federated
// Optimization", Algorithm 2), per coordinate
//   m = beta1 m + (1 - beta1) d
//   v = FedAdam: beta2 v + (1 - beta2) d^2
//       FedYogi: v - (1 - beta2) d^2 sign(v - d^2)
//   x = x + eta m / (sqrt(v) + tau)
// with m starting at 0 and v at tau^2, no bias correction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "aggregator/strategy.h"

namespace cleave::aggregator {

// The moments of a server optimizer, float32 like the adapters, one per
// adapter name and prefix, created at the first round from the global's names
// and shapes. As strategy state: "<prefix><name>" for each, and "step" (int64
// scalar: rounds aggregated so far).
class ServerMoments {
 public:
  struct Moment {
    std::string prefix;   // "m/", "v/"
    double initial;       // every coordinate's value at the first round
  };
  ServerMoments(std::string strategy, std::vector<Moment> moments)
      : strategy_(std::move(strategy)), kinds_(std::move(moments)) {}

  // Starts the moments at the first round (also after loading a state saved
  // before any round), then checks that they cover `global` with its shapes.
  void start_or_check(const NamedTensors& global);
  at::Tensor& moment(size_t prefix, const std::string& name) { return moments_.at(prefix).at(name); }
  void count_round() { ++step_; }
  int64_t step() const { return step_; }

  NamedTensors state() const;
  // Throws std::invalid_argument naming what does not fit.
  void load_state(const NamedTensors& state);

 private:
  std::string strategy_;
  std::vector<Moment> kinds_;
  std::vector<NamedTensors> moments_;   // one per kind; empty before the first round
  int64_t step_ = 0;
};

class FedAvgM : public Strategy {
 public:
  explicit FedAvgM(const FedAvgMOptions& options = {}, int local_steps = 0);
  std::string name() const override;
  NamedTensors aggregate(int round, const NamedTensors& global,
                         const std::vector<ClientUpdate>& updates) override;
  NamedTensors state() const override { return momentum_.state(); }
  void load_state(const NamedTensors& state) override { momentum_.load_state(state); }

 private:
  FedAvgMOptions options_;
  ServerMoments momentum_;   // "m/<name>"
};

// FedAdam and FedYogi: state() holds "m/<name>", "v/<name>" and "step".
class FedOpt : public Strategy {
 public:
  NamedTensors aggregate(int round, const NamedTensors& global,
                         const std::vector<ClientUpdate>& updates) override;
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;

  int64_t step() const { return moments_.step(); }

 protected:
  FedOpt(const FedOptOptions& options, int local_steps, const std::string& name);
  // The new second moment from the old one and the squared pseudo-gradient.
  virtual at::Tensor next_second_moment(const at::Tensor& v, const at::Tensor& d_squared) const = 0;

  FedOptOptions options_;

 private:
  ServerMoments moments_;   // "m/<name>" (first) and "v/<name>" (second)
};

class FedAdam : public FedOpt {
 public:
  explicit FedAdam(const FedOptOptions& options = {}, int local_steps = 0);
  std::string name() const override;

 protected:
  at::Tensor next_second_moment(const at::Tensor& v, const at::Tensor& d_squared) const override;
};

class FedYogi : public FedOpt {
 public:
  explicit FedYogi(const FedOptOptions& options = {}, int local_steps = 0);
  std::string name() const override;

 protected:
  at::Tensor next_second_moment(const at::Tensor& v, const at::Tensor& d_squared) const override;
};

}  // namespace cleave::aggregator
