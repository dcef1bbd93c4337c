// AdamW (decoupled weight decay, Loshchilov & Hutter) over adapter tensors,
// with state that can be checkpointed and restored exactly.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace cleave {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class AdamW {
 public:
  AdamW(std::vector<at::Tensor> params, AdamWOptions options);
  // One update with learning rate `lr` using each parameter's .grad()
  // (parameters without a gradient are skipped).
  void step(double lr);
  void zero_grad();
  int64_t steps() const { return step_; }

  // Moments as named tensors ("<i>.m", "<i>.v") plus "step", for checkpoints.
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& state);

 private:
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> m_, v_;
  AdamWOptions options_;
  int64_t step_ = 0;
};

// Scales all gradients so their global L2 norm is at most max_norm; returns the
// norm before clipping.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace cleave
