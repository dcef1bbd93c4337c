#include "model/frozen_linear.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace cleave {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Autograd node that holds a pointer to the frozen weight instead of saving a
// dequantized copy. The weight outlives the graph (it belongs to the model).
struct FrozenMatmul : public torch::autograd::Function<FrozenMatmul> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t weight_address) {
    ctx->saved_data["weight"] = weight_address;
    const auto* weight = reinterpret_cast<const FrozenWeight*>(weight_address);
    return at::matmul(x, weight->dequantize().t());  // [..., out]
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto* weight = reinterpret_cast<const FrozenWeight*>(ctx->saved_data["weight"].toInt());
    at::Tensor grad_x = at::matmul(grad_outputs[0], weight->dequantize());  // [..., in]
    return {grad_x, at::Tensor()};
  }
};

}  // namespace

at::Tensor frozen_matmul(const at::Tensor& x, const FrozenWeight& weight) {
  if (!x.requires_grad()) {
    return at::matmul(x, weight.dequantize().t());
  }
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
