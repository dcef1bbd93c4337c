#include "model/attention.h"

#include <ATen/ATen.h>
#include <torch/csrc/api/include/torch/version.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "model/cpu_matmul.h"
#include "model/fused_attention.h"
#include "model/fused_ops.h"

namespace cleave {

at::Tensor apply_rope(const at::Tensor& x, int64_t pos0, int64_t rope_dims, double base,
                      RopeStyle style) {
  if (x.scalar_type() == at::kFloat && x.device().is_cpu()) {
    return fused_rope(x, pos0, rope_dims, base, style);
  }
  return apply_rope_naive(x, pos0, rope_dims, base, style);
}

at::Tensor apply_rope_naive(const at::Tensor& x, int64_t pos0, int64_t rope_dims, double base,
                            RopeStyle style) {
  const int64_t T = x.size(1);
  const int64_t head_dim = x.size(3);
  const int64_t half = rope_dims / 2;
  // theta_i = base^(-2i/rope_dims); angle[t, i] = (pos0 + t) * theta_i
  const auto f64 = x.options().dtype(at::kDouble);  // angles in float64 on x's device
  at::Tensor inv_freq =
      at::pow(base, -at::arange(0, half, f64) * 2.0 / static_cast<double>(rope_dims));
  at::Tensor pos = at::arange(pos0, pos0 + T, f64);
  at::Tensor angle = at::outer(pos, inv_freq).to(x.scalar_type());  // [T, half]
  at::Tensor cos = angle.cos().view({1, T, 1, half});
  at::Tensor sin = angle.sin().view({1, T, 1, half});

  at::Tensor rot = rope_dims == head_dim ? x : x.narrow(3, 0, rope_dims);
  at::Tensor x0, x1;
  if (style == RopeStyle::adjacent_pairs) {
    at::Tensor pairs = rot.unflatten(3, {half, 2});  // [B, T, H, half, 2]
    x0 = pairs.select(4, 0);
    x1 = pairs.select(4, 1);
  } else {
    x0 = rot.narrow(3, 0, half);
    x1 = rot.narrow(3, half, half);
  }
  at::Tensor y0 = x0 * cos - x1 * sin;
  at::Tensor y1 = x0 * sin + x1 * cos;
  at::Tensor rotated = style == RopeStyle::adjacent_pairs ? at::stack({y0, y1}, 4).flatten(3)
                                                          : at::cat({y0, y1}, 3);
  if (rope_dims == head_dim) return rotated;
  return at::cat({rotated, x.narrow(3, rope_dims, head_dim - rope_dims)}, 3);
}

bool fused_attention_pays_off(int64_t batch, int64_t q_heads, int64_t t, int64_t s, int64_t head_dim) {
  if (head_dim < 32) return true;
  const double scores_bytes = 4.0 * static_cast<double>(batch) * q_heads * t * s;
  return scores_bytes > static_cast<double>(kMaxMaterialisedScoresBytes);
}

namespace {
std::atomic<CpuAttentionForm> cpu_attention_form{CpuAttentionForm::automatic};
}  // namespace

void set_cpu_attention_form(CpuAttentionForm form) { cpu_attention_form = form; }

CpuAttentionForm parse_cpu_attention_form(const std::string& name) {
  if (name == "auto") return CpuAttentionForm::automatic;
  if (name == "fused") return CpuAttentionForm::fused;
  if (name == "blas") return CpuAttentionForm::blas;
  throw std::invalid_argument("unknown attention form '" + name + "': expected auto, fused or blas");
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (q.scalar_type() == at::kFloat && q.device().is_cpu()) {
    const CpuAttentionForm form = cpu_attention_form.load(std::memory_order_relaxed);
    const bool fused = form == CpuAttentionForm::automatic
                           ? fused_attention_pays_off(q.size(0), q.size(2), q.size(1), k.size(1), q.size(3))
                           : form == CpuAttentionForm::fused;
    if (fused) return fused_causal_attention(q, k, v);
    // CPU bf16 (or int8) matmul mode: the naive form's two batched products
    // in bf16 (oneDNN), like the frozen matmuls; its softmax stays float32.
    if (cpu_matmul() != CpuMatmul::float32) {
      return causal_attention_naive(q.to(at::kBFloat16), k.to(at::kBFloat16), v.to(at::kBFloat16))
          .to(at::kFloat);
    }
    return causal_attention_naive(q, k, v);
  }
#if TORCH_VERSION_MAJOR >= 2
  // LibTorch 2.x on a GPU: its fused (flash / memory-efficient) kernels.
  // Their is_causal mask is aligned top-left, so only T == S (training,
  // prefill) or a single query (which sees every key) can use them.
  const int64_t T = q.size(1), S = k.size(1);
  if (!q.device().is_cpu() && (T == S || T == 1)) {
    const int64_t B = q.size(0), Hq = q.size(2), d = q.size(3), Hkv = k.size(2);
    at::Tensor kh = k.transpose(1, 2), vh = v.transpose(1, 2);  // [B, Hkv, S, d]
    if (Hq != Hkv) {
      kh = kh.unsqueeze(2).expand({B, Hkv, Hq / Hkv, S, d}).reshape({B, Hq, S, d});
      vh = vh.unsqueeze(2).expand({B, Hkv, Hq / Hkv, S, d}).reshape({B, Hq, S, d});
    }
    at::Tensor out = at::scaled_dot_product_attention(q.transpose(1, 2), kh, vh, {}, 0.0,
                                                      /*is_causal=*/T == S && T > 1);
    return out.transpose(1, 2).contiguous();  // [B, T, Hq, d]
  }
#endif
  return causal_attention_naive(q, k, v);
}

at::Tensor causal_attention_naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), d = q.size(3);
  const int64_t S = k.size(1), Hkv = k.size(2);
  const int64_t group = Hq / Hkv;
  at::Tensor qh = q.transpose(1, 2);  // [B, Hq, T, d]
  at::Tensor kh = k.transpose(1, 2);  // [B, Hkv, S, d]
  at::Tensor vh = v.transpose(1, 2);
  if (group > 1) {
    kh = kh.unsqueeze(2).expand({B, Hkv, group, S, d}).reshape({B, Hq, S, d});
    vh = vh.unsqueeze(2).expand({B, Hkv, group, S, d}).reshape({B, Hq, S, d});
  }
  at::Tensor scores = at::matmul(qh, kh.transpose(2, 3)) * (1.0 / std::sqrt(static_cast<double>(d)));
  // query t may see keys 0 .. S - T + t
  at::Tensor mask = at::ones({T, S}, q.options().dtype(at::kBool)).triu(S - T + 1);
  scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  // bf16/fp16: the softmax in float32 (as HF's eager attention)
  at::Tensor probs = q.scalar_type() == at::kFloat
                         ? at::softmax(scores, -1)
                         : at::softmax(scores, -1, at::kFloat).to(q.scalar_type());  // [B, Hq, T, S]
  return at::matmul(probs, vh).transpose(1, 2).contiguous();  // [B, T, Hq, d]
}

}  // namespace cleave
