// Causal grouped-query attention as one autograd node with hand-written CPU
// kernels (flash-attention style): scores are computed a tile of query rows at
// a time and never stored as [B, H, T, S]; the forward keeps only the output
// and each row's logsumexp, the backward recomputes the probabilities from
// them. K/V heads are shared by their group of query heads without expanding.
// Float32 only; callers go through causal_attention() (model/attention.h),
// which falls back to the naive form for other dtypes.
#pragma once

#include <ATen/core/Tensor.h>

namespace cleave {

// q: [B, T, Hq, d], k, v: [B, S, Hkv, d] float32 (S >= T, Hq a multiple of
// Hkv; query t sits at key position S - T + t) -> [B, T, Hq, d].
// Differentiable in q, k and v.
at::Tensor fused_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace cleave
