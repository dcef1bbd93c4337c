// Single-pass CPU kernels, each one autograd node, for the pointwise pieces
// of a Llama block: RMSNorm with a frozen weight, SwiGLU and rotary
// embedding. Eager ATen runs each as 4-10 separate ops that each read and
// write the whole activation (and save intermediates for backward); these
// read it once and save only the inputs (plus one scalar per row for the norm).
// Float32, contiguous-able inputs only: the public functions (rms_norm,
// swiglu, apply_rope) check and fall back to ATen ops otherwise.
#pragma once

#include <ATen/core/Tensor.h>

#include "model/attention.h"

namespace cleave {

// x: [..., dim] float32, weight: [dim] float32 without grad -> [..., dim].
at::Tensor fused_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// silu(gate) * up, both [..., ffn] float32 -> [..., ffn].
at::Tensor fused_swiglu(const at::Tensor& gate, const at::Tensor& up);

// apply_rope (model/attention.h) for float32 x: [B, T, H, head_dim].
at::Tensor fused_rope(const at::Tensor& x, int64_t pos0, int64_t rope_dims, double base,
                      RopeStyle style);

// Not an autograd node: the chunked loss's logits rows (model/chunked_loss.cpp).
// x: [R, V] float32 with contiguous rows (a row stride of V) -> each row
// replaced by its softmax, in one exp per entry; returns each row's
// logsumexp, float32 [R, 1].
at::Tensor softmax_rows_in_place(at::Tensor& x);

}  // namespace cleave
