// Token-level cross-entropy with per-target weights (0 = not scored).
#pragma once

#include <ATen/core/Tensor.h>

namespace cleave {

struct LossResult {
  at::Tensor loss;         // scalar: mean NLL over scored targets (differentiable)
  double nll_sum = 0;      // sum of NLL over scored targets
  int64_t n_scored = 0;    // number of targets with weight > 0
};

// logits: [B, T, V], targets: [B, T] int64, weights: [B, T] float (0 or 1).
LossResult cross_entropy(const at::Tensor& logits, const at::Tensor& targets,
                         const at::Tensor& weights);

}  // namespace cleave
