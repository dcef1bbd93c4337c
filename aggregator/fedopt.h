// Server-optimizer strategies (Reddi et al. 2021, "Adaptive Federated
// Optimization", Algorithm 2). The pseudo-gradient of a round is the
// sample-weighted mean client delta d; per coordinate
//   m = beta1 m + (1 - beta1) d
//   v = FedAdam: beta2 v + (1 - beta2) d^2
//       FedYogi: v - (1 - beta2) d^2 sign(v - d^2)
//   x = x + eta m / (sqrt(v) + tau)
// with m starting at 0 and v at tau^2, no bias correction.
#pragma once

#include <cstdint>

#include "aggregator/strategy.h"

namespace cleave::aggregator {

// The moments, float32 like the adapters, created at the first aggregate()
// from the global's names and shapes. state() holds "m/<name>", "v/<name>"
// and "step" (int64 scalar: rounds aggregated so far).
class FedOpt : public Strategy {
 public:
  NamedTensors aggregate(int round, const NamedTensors& global,
                         const std::vector<ClientUpdate>& updates) override;
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;

  int64_t step() const { return step_; }

 protected:
  FedOpt(const FedOptOptions& options, int local_steps);
  // The new second moment from the old one and the squared pseudo-gradient.
  virtual at::Tensor next_second_moment(const at::Tensor& v, const at::Tensor& d_squared) const = 0;

  FedOptOptions options_;

 private:
  void start_moments(const NamedTensors& global);
  void require_moments_fit(const NamedTensors& global) const;

  NamedTensors m_;  // first moment per adapter name
  NamedTensors v_;  // second moment per adapter name
  int64_t step_ = 0;
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
