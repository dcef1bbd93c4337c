#include "model/frozen_linear.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "model/bf16_matmul.h"
#include "model/cpu_matmul.h"
#include "model/int8_matmul.h"

namespace cleave {
namespace {

// a: [..., k] -> [..., n]: the shape of a product on a's last dimension.
std::vector<int64_t> with_last_dim(const at::Tensor& a, int64_t n) {
  std::vector<int64_t> sizes(a.sizes().begin(), a.sizes().end());
  sizes.back() = n;
  return sizes;
}

// x: [..., in] -> x W^T: [..., out] (float32 when x is).
at::Tensor times_weight_t(const at::Tensor& x, const FrozenWeight& weight) {
  switch (frozen_product(x, weight)) {
    case CpuMatmul::bf16: {
      const int64_t out_features = weight.out_features();
      at::Tensor y = at::empty({x.numel() / weight.in_features(), out_features}, x.options());  // [M, out]
      bf16_product_nt(x.reshape({-1, weight.in_features()}).to(at::kBFloat16).contiguous(),
                      weight.dequantize_bf16(), y);
      return y.view(with_last_dim(x, out_features));
    }
    case CpuMatmul::int8: {
      const int64_t out_features = weight.out_features();
      at::Tensor y = at::empty({x.numel() / weight.in_features(), out_features}, x.options());  // [M, out]
      int8_product_nt(quantize_rows(x.reshape({-1, weight.in_features()})),
                      weight.int8_rows(0, out_features), y);
      return y.view(with_last_dim(x, out_features));
    }
    case CpuMatmul::float32: break;
  }
  return at::matmul(x, weight.dequantize().t());
}

// g: [..., out] -> g W: [..., in]. In int8, g W = (g * s) Q: the gradient
// takes the weight's row scales before it is rounded, and Q stays as stored.
at::Tensor times_weight(const at::Tensor& g, const FrozenWeight& weight) {
  switch (frozen_product(g, weight)) {
    case CpuMatmul::bf16: {
      at::Tensor dx = at::empty({g.numel() / weight.out_features(), weight.in_features()}, g.options());
      bf16_product_nn(g.reshape({-1, weight.out_features()}).to(at::kBFloat16).contiguous(),
                      weight.dequantize_bf16(), dx);
      return dx.view(with_last_dim(g, weight.in_features()));
    }
    case CpuMatmul::int8: {
      const Int8Rows w = weight.int8_rows(0, weight.out_features());
      at::Tensor dx = at::empty({g.numel() / weight.out_features(), weight.in_features()}, g.options());
      int8_product_nn(quantize_rows(g.reshape({-1, weight.out_features()}), w.scales), w.codes, dx);
      return dx.view(with_last_dim(g, weight.in_features()));
    }
    case CpuMatmul::float32: break;
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

CpuMatmul frozen_product(const at::Tensor& a, const FrozenWeight& weight) {
  const CpuMatmul mode = cpu_matmul();
  if (mode == CpuMatmul::float32 || a.scalar_type() != at::kFloat || !a.device().is_cpu() ||
      weight.dtype() != at::kFloat) {
    return CpuMatmul::float32;
  }
  if (mode == CpuMatmul::int8 && weight.storage() == FrozenWeight::Storage::int8_rows) return CpuMatmul::int8;
  return CpuMatmul::bf16;
}

at::Tensor frozen_matmul(const at::Tensor& x, const FrozenWeight& weight) {
  if (!x.requires_grad()) return times_weight_t(x, weight);
  return FrozenMatmul::apply(x, reinterpret_cast<int64_t>(&weight));
}

at::Tensor FrozenLinear::forward(const at::Tensor& x, const LinearAdapters* adapters) const {
  at::Tensor y = frozen_matmul(x, weight);
  if (bias.defined()) y = y + bias;
  return adapters ? adapters->add_delta(name, x, y) : y;
}

}  // namespace cleave
