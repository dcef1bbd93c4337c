// Token-level cross-entropy with per-target weights (0 = not scored).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace cleave {

struct LossResult {
  at::Tensor loss;         // scalar: mean NLL over scored targets (differentiable)
  double nll_sum = 0;      // sum of NLL over scored targets
  int64_t n_scored = 0;    // number of targets with weight > 0
};

// logits: [B, T, V], targets: [B, T] int64, weights: [B, T] float (0 or 1).
LossResult cross_entropy(const at::Tensor& logits, const at::Tensor& targets,
                         const at::Tensor& weights);

struct FrozenLinear;

// The same loss for logits = output(hidden), without ever holding the
// [B*T, vocab] logits: the scored rows go through in chunks of `chunk_rows`
// (0: about 16 MiB of logits per chunk), and each chunk's logits, log-softmax,
// NLL and gradient with respect to `hidden` are computed in the forward pass
// and dropped; backward only scales the saved [rows, dim] gradient. A
// quantized output weight is dequantized a slice of vocabulary rows at a
// time. The output projection must carry no adapter (the frozen weight and
// bias are not differentiated). hidden: [B, T, dim] (the final-normed state).
LossResult chunked_cross_entropy(const at::Tensor& hidden, const FrozenLinear& output,
                                 const at::Tensor& targets, const at::Tensor& weights,
                                 int64_t chunk_rows = 0);

}  // namespace cleave
