// Products on int8 codes (config `runtime.matmul: int8`, model/cpu_matmul.h):
// a frozen int8 weight (base.quant int8: one absmax scale per output row)
// multiplied without expanding it to bf16 or float. Activations and
// gradients are rounded to int8 per row the same way, oneDNN multiplies the
// codes with int32 accumulation (VNNI dot products where the CPU has them)
// and the two scales are applied to the float result. Accuracy: about 0.8%
// relative error per product against float32, where bf16 rounding gives
// 0.3% (tests/int8_matmul_test.cpp states the bounds).
#pragma once

#include <ATen/core/Tensor.h>

namespace cleave {

// A matrix as int8 rows: row r is scales[r] * codes[r, :].
struct Int8Rows {
  at::Tensor codes;   // int8 [R, K], contiguous
  at::Tensor scales;  // float [R]
};

// Rounds each row of x (float [R, K] on the CPU) to int8: scale =
// max(max|x_r| / 127, 1e-12), code = nearest(x / scale), ties to even.
// With column_scales (float [K]) the rows of x * column_scales are rounded
// instead. The one rounding rule for int8 weights and activations alike.
Int8Rows quantize_rows(const at::Tensor& x, const at::Tensor& column_scales = at::Tensor());

// out = a b^T: a [M, K], b [N, K] -> out float [M, N]. out may be a view
// with a row stride above N (a slice of wider logits).
void int8_product_nt(const Int8Rows& a, const Int8Rows& b, at::Tensor& out);

// out = a B with B = b_codes int8 [N, K] taken at unit scale: a [M, N] ->
// out float [M, K]. For dy W with W = s * Q, round dy * s into `a`
// (quantize_rows(dy, s)) and pass Q: the weight is never re-rounded.
void int8_product_nn(const Int8Rows& a, const at::Tensor& b_codes, at::Tensor& out);

// Whether this build links oneDNN (libdnnl-dev at configure time); without
// it the products throw saying what to install.
bool int8_products_built();

// Whether this CPU has int8 dot products (AVX512_VNNI, AVX_VNNI or AMX-INT8),
// which is what makes int8 products faster than bf16 ones.
bool cpu_has_int8_dot();

}  // namespace cleave
