// Causal grouped-query attention and rotary position embedding.
#pragma once

#include <ATen/core/Tensor.h>

namespace cleave {

enum class RopeStyle { adjacent_pairs, halves };  // GGUF llama: adjacent; qwen2 (NEOX): halves

// Rotates the first `rope_dims` of each head. x: [B, T, H, head_dim], positions pos0..pos0+T-1.
// Float32 runs the fused kernel (model/fused_ops.h), other dtypes apply_rope_naive.
at::Tensor apply_rope(const at::Tensor& x, int64_t pos0, int64_t rope_dims, double base,
                      RopeStyle style);
// The same as eager tensor ops (any dtype); the fused kernel's reference.
at::Tensor apply_rope_naive(const at::Tensor& x, int64_t pos0, int64_t rope_dims, double base,
                            RopeStyle style);

// softmax(q k^T / sqrt(d) + causal mask) v with k/v heads shared by groups of q heads.
// q: [B, T, Hq, d], k, v: [B, S, Hkv, d] (S >= T; query t sits at key position S - T + t)
// -> [B, T, Hq, d]. Float32 on CPU runs the fused kernel (model/fused_attention.h);
// other dtypes the naive form below.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// The same as eager tensor ops: materialises the [B, Hq, T, S] scores and
// expands k/v to Hq heads. Any dtype; the reference the fused kernel is tested against.
at::Tensor causal_attention_naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace cleave
