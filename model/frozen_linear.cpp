#include "model/frozen_linear.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "model/cpu_matmul.h"

namespace cleave {
namespace {

// x: [..., in] -> x W^T: [..., out] (float32 when x is).
at::Tensor times_weight_t(const at::Tensor& x, const FrozenWeight& weight) {
  if (frozen_product_in_bf16(x, weight)) {
    return at::matmul(x.to(at::kBFloat16), weight.dequantize_bf16().t()).to(at::kFloat);
  }
  return at::matmul(x, weight.dequantize().t());
}

// g: [..., out] -> g W: [..., in].
at::Tensor times_weight(const at::Tensor& g, const FrozenWeight& weight) {
  if (frozen_product_in_bf16(g, weight)) {
    return at::matmul(g.to(at::kBFloat16), weight.dequantize_bf16()).to(at::kFloat);
  }
  return at::matmul(g, weight.dequantize());
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Autograd node that holds a pointer to the frozen weight instead of saving a
// dequantized copy. The weight outlives the graph (it belongs to the model).
struct FrozenMatmul : public torch::autograd::Function<FrozenMatmul> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t weight_address) {
    ctx->saved_data["weight"] = weight_address;
    const auto* weight = reinterpret_cast<const FrozenWeight*>(weight_address);
    return times_weight_t(x, *weight);  // [..., out]
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto* weight = reinterpret_cast<const FrozenWeight*>(ctx->saved_data["weight"].toInt());
    return {times_weight(grad_outputs[0], *weight), at::Tensor()};  // [..., in]
  }
};

}  // namespace

bool frozen_product_in_bf16(const at::Tensor& a, const FrozenWeight& weight) {
  return cpu_matmul() == CpuMatmul::bf16 && a.scalar_type() == at::kFloat && a.device().is_cpu() &&
         weight.dtype() == at::kFloat;
}

at::Tensor frozen_matmul(const at::Tensor& x, const FrozenWeight& weight) {
  if (!x.requires_grad()) return times_weight_t(x, weight);
  return FrozenMatmul::apply(x, reinterpret_cast<int64_t>(&weight));
}

at::Tensor FrozenLinear::forward(const at::Tensor& x, const LinearAdapters* adapters) const {
  at::Tensor y = frozen_matmul(x, weight);
  if (bias.defined()) y = y + bias;
  if (adapters) {
    at::Tensor delta = adapters->delta(name, x);
    if (delta.defined()) y = y + delta;
  }
  return y;
}

}  // namespace cleave
