// Causal grouped-query attention and rotary position embedding.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

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
// -> [B, T, Hq, d]. Float32 on CPU runs the fused kernel (model/fused_attention.h)
// or, where BLAS is faster and the scores are small, the naive form
// (fused_attention_pays_off), with its products in bf16 when the process runs
// CPU bf16 matmuls (model/cpu_matmul.h); other dtypes the naive form.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// The most bytes of [B, Hq, T, S] float32 scores the CPU path materialises
// per attention call (the naive form keeps scores and probabilities for
// backward); beyond it the fused kernel runs whatever the head width.
inline constexpr int64_t kMaxMaterialisedScoresBytes = int64_t{64} << 20;

// Whether CPU float32 attention runs the fused kernel. On narrow heads
// (d < 32) its register-tiled loops beat BLAS on tiny dot products; on wide
// ones sgemm wins (llama-40M, d 64: about 1.3x, llama-110M: 1.5x per step,
// see BENCHMARKS.md), so those use the naive form while its scores fit
// kMaxMaterialisedScoresBytes, and the fused kernel (no [T, S] scores) beyond.
bool fused_attention_pays_off(int64_t batch, int64_t q_heads, int64_t t, int64_t s, int64_t head_dim);

// Which form CPU float32 attention takes, for the whole process: chosen by
// fused_attention_pays_off (automatic, the default), or always one of them
// (benchmarks comparing the two: train_step_bench --attention).
enum class CpuAttentionForm { automatic, fused, blas };
void set_cpu_attention_form(CpuAttentionForm form);
CpuAttentionForm parse_cpu_attention_form(const std::string& name);  // throws listing the names

// The same as eager tensor ops: materialises the [B, Hq, T, S] scores and
// expands k/v to Hq heads. Any dtype; the reference the fused kernel is tested against.
at::Tensor causal_attention_naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace cleave
