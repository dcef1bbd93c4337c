// Products of bf16 operands with a float32 result (runtime.matmul bf16,
// model/cpu_matmul.h): oneDNN accumulates in float32 and writes float32, so
// the result is neither rounded to bf16 nor converted back in a second pass,
// as at::mm on bf16 tensors would do. A build without oneDNN, or a CPU without
// native bf16 (cpu_has_native_bf16()), takes at::mm and a conversion (the
// result rounded to bf16, as before).
#pragma once

#include <ATen/core/Tensor.h>

namespace cleave {

// out (+)= a b^T: a bf16 [M, K], b bf16 [N, K] (both contiguous) -> out float
// [M, N], which may be a view with a row stride above N (a slice of wider
// logits). accumulate adds to out instead of overwriting it.
void bf16_product_nt(const at::Tensor& a, const at::Tensor& b, at::Tensor& out, bool accumulate = false);

// out (+)= a B: a bf16 [M, N], b bf16 [N, K] (both contiguous) -> out float [M, K].
void bf16_product_nn(const at::Tensor& a, const at::Tensor& b, at::Tensor& out, bool accumulate = false);

}  // namespace cleave
