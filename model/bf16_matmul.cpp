#include "model/bf16_matmul.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include "model/cpu_matmul.h"
#include "model/onednn_product.h"

namespace cleave {
namespace {

void check_operand(const at::Tensor& t, const char* what) {
  if (!t.defined() || t.dim() != 2 || t.scalar_type() != at::kBFloat16 || !t.is_contiguous() ||
      !t.device().is_cpu()) {
    throw std::invalid_argument(std::string("bf16 product: ") + what + " must be a contiguous CPU bf16 matrix");
  }
}

// out (+)= a times b as `shape` lays b out (a b^T or a B).
void product(const ProductShape& shape, const at::Tensor& a, const at::Tensor& b, at::Tensor& out) {
  if (shape.m == 0 || shape.n == 0) return;
  if (shape.k == 0) {
    if (!shape.accumulate) out.zero_();
    return;
  }
  // oneDNN where the CPU multiplies bf16 natively (what auto picks bf16
  // for); a bf16 product forced elsewhere takes LibTorch's own path.
  static const bool direct = onednn_products_built() && cpu_has_native_bf16();
  if (!direct) {
    const at::Tensor result = at::mm(a, shape.b_rows_are_columns ? b.t() : b);
    shape.accumulate ? out.add_(result) : out.copy_(result);
    return;
  }
  run_onednn_product(shape, a.data_ptr(), b.data_ptr(), out.data_ptr<float>());
}

}  // namespace

void bf16_product_nt(const at::Tensor& a, const at::Tensor& b, at::Tensor& out, bool accumulate) {
  check_operand(a, "a");
  check_operand(b, "b");
  const int64_t m = a.size(0), k = a.size(1), n = b.size(0);
  if (b.size(1) != k) {
    throw std::invalid_argument("bf16_product_nt: a is [" + std::to_string(m) + ", " + std::to_string(k) +
                                "] but b's rows have " + std::to_string(b.size(1)) + " columns");
  }
  check_product_out(out, m, n, ProductOperands::bf16);
  product({m, k, n, out.stride(0), true, ProductOperands::bf16, accumulate}, a, b, out);
}

void bf16_product_nn(const at::Tensor& a, const at::Tensor& b, at::Tensor& out, bool accumulate) {
  check_operand(a, "a");
  check_operand(b, "b");
  const int64_t m = a.size(0), n = a.size(1), k = b.size(1);
  if (b.size(0) != n) {
    throw std::invalid_argument("bf16_product_nn: a has " + std::to_string(n) + " columns but b has " +
                                std::to_string(b.size(0)) + " rows");
  }
  check_product_out(out, m, k, ProductOperands::bf16);
  product({m, n, k, out.stride(0), false, ProductOperands::bf16, accumulate}, a, b, out);
}

}  // namespace cleave
