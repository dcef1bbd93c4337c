#include "model/loss.h"

#include <ATen/ATen.h>

namespace cleave {

LossResult cross_entropy(const at::Tensor& logits, const at::Tensor& targets,
                         const at::Tensor& weights) {
  constexpr int64_t kIgnore = -100;
  const int64_t V = logits.size(-1);
  // The log-softmax in float32 whatever the compute dtype, on the logits' device.
  const at::Tensor logits32 = logits.to(at::kFloat);
  at::Tensor scored = weights.reshape({-1}).to(logits.device()) > 0;             // [B*T]
  at::Tensor flat_targets =
      targets.reshape({-1}).to(logits.device(), at::kLong).masked_fill(scored.logical_not(), kIgnore);
  LossResult r;
  r.n_scored = scored.sum().item<int64_t>();
  at::Tensor sum = at::cross_entropy_loss(logits32.reshape({-1, V}), flat_targets, {},
                                          at::Reduction::Sum, kIgnore);
  r.nll_sum = sum.item<double>();
  r.loss = sum / static_cast<double>(std::max<int64_t>(r.n_scored, 1));
  return r;
}

}  // namespace cleave
