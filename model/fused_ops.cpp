#include "model/fused_ops.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <vector>

#include "model/cpu_kernels.h"

namespace cleave {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per parallel chunk so each chunk touches about 64K floats: small
// tensors stay on one thread (a parallel region costs more than they do).
int64_t grain_rows(int64_t row_len) { return std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(row_len, 1)); }

struct RmsNorm : public torch::autograd::Function<RmsNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            double eps) {
    const int64_t dim = x.size(-1), rows = x.numel() / dim;
    at::Tensor y = at::empty_like(x);
    at::Tensor rstd = at::empty({rows}, x.options());  // 1 / sqrt(mean(x^2) + eps) per row
    const float *xp = x.data_ptr<float>(), *wp = weight.data_ptr<float>();
    float *yp = y.data_ptr<float>(), *rp = rstd.data_ptr<float>();
    at::parallel_for(0, rows, grain_rows(dim), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float* xr = xp + r * dim;
        double sum = 0;
        for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
        const float s = static_cast<float>(1.0 / std::sqrt(sum / dim + eps));
        rp[r] = s;
        float* yr = yp + r * dim;
        for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * s * wp[i];
      }
    });
    ctx->save_for_backward({x, weight, rstd});
    return y;
  }

  // dx = rstd * g - x * rstd^3 * mean(g * x), g = dy * weight
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &rstd = saved[2];
    const at::Tensor dy = grads[0].contiguous();
    const int64_t dim = x.size(-1), rows = x.numel() / dim;
    at::Tensor dx = at::empty_like(x);
    const float *xp = x.data_ptr<float>(), *wp = weight.data_ptr<float>(),
                *rp = rstd.data_ptr<float>(), *gp = dy.data_ptr<float>();
    float* dxp = dx.data_ptr<float>();
    at::parallel_for(0, rows, grain_rows(dim), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float *xr = xp + r * dim, *gr = gp + r * dim;
        float dot = 0;
        for (int64_t i = 0; i < dim; ++i) dot += gr[i] * wp[i] * xr[i];
        const float s = rp[r];
        const float c = s * s * s * dot / static_cast<float>(dim);
        float* dxr = dxp + r * dim;
        for (int64_t i = 0; i < dim; ++i) dxr[i] = s * gr[i] * wp[i] - c * xr[i];
      }
    });
    return {dx, at::Tensor(), at::Tensor()};
  }
};

// SwiGLU's elementwise loops over [begin, end), compiled for the baseline
// and for AVX-512 (picked at run time, as the attention kernels are): the
// baseline build targets plain x86-64, whose 4-wide SSE runs the exp and
// the division at a quarter of a 16-wide register's rate.
// out = silu(g) * u
template <bool Fma>
CLEAVE_ALWAYS_INLINE void swiglu_forward_body(const float* gp, const float* up, float* op, int64_t begin,
                                              int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float g = gp[i];
    op[i] = g / (1.0f + kernels::fast_exp<Fma>(-g)) * up[i];
  }
}

// s = sigmoid(g): d gate = dy * up * s * (1 + g (1 - s)), d up = dy * g * s
template <bool Fma>
CLEAVE_ALWAYS_INLINE void swiglu_backward_body(const float* gp, const float* up, const float* dyp, float* dgp,
                                               float* dup, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float g = gp[i];
    const float s = 1.0f / (1.0f + kernels::fast_exp<Fma>(-g));
    dgp[i] = dyp[i] * up[i] * s * (1.0f + g * (1.0f - s));
    dup[i] = dyp[i] * g * s;
  }
}

using SwiGluForward = void (*)(const float*, const float*, float*, int64_t, int64_t);
using SwiGluBackward = void (*)(const float*, const float*, const float*, float*, float*, int64_t, int64_t);

void swiglu_forward_generic(const float* gp, const float* up, float* op, int64_t begin, int64_t end) {
  swiglu_forward_body<false>(gp, up, op, begin, end);
}
CLEAVE_TARGET_AVX512 void swiglu_forward_avx512(const float* gp, const float* up, float* op, int64_t begin,
                                                int64_t end) {
  swiglu_forward_body<true>(gp, up, op, begin, end);
}
void swiglu_backward_generic(const float* gp, const float* up, const float* dyp, float* dgp, float* dup,
                             int64_t begin, int64_t end) {
  swiglu_backward_body<false>(gp, up, dyp, dgp, dup, begin, end);
}
CLEAVE_TARGET_AVX512 void swiglu_backward_avx512(const float* gp, const float* up, const float* dyp, float* dgp,
                                                 float* dup, int64_t begin, int64_t end) {
  swiglu_backward_body<true>(gp, up, dyp, dgp, dup, begin, end);
}

// softmax_rows_in_place's rows [begin, end) of x (rows v apart), in the same
// two copies.
template <bool Fma>
CLEAVE_ALWAYS_INLINE void softmax_rows_body(float* x, int64_t v, float* lse, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) lse[r] = kernels::softmax_row<Fma>(x + r * v, v, 1.0f);
}
using SoftmaxRows = void (*)(float*, int64_t, float*, int64_t, int64_t);
void softmax_rows_generic(float* x, int64_t v, float* lse, int64_t begin, int64_t end) {
  softmax_rows_body<false>(x, v, lse, begin, end);
}
CLEAVE_TARGET_AVX512 void softmax_rows_avx512(float* x, int64_t v, float* lse, int64_t begin, int64_t end) {
  softmax_rows_body<true>(x, v, lse, begin, end);
}

struct SwiGlu : public torch::autograd::Function<SwiGlu> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    const SwiGluForward kernel = kernels::has_avx512() ? swiglu_forward_avx512 : swiglu_forward_generic;
    at::Tensor out = at::empty_like(gate);
    const float *gp = gate.data_ptr<float>(), *up_ = up.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, gate.numel(), 1 << 16, [&](int64_t begin, int64_t end) { kernel(gp, up_, op, begin, end); });
    ctx->save_for_backward({gate, up});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const SwiGluBackward kernel = kernels::has_avx512() ? swiglu_backward_avx512 : swiglu_backward_generic;
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &gate = saved[0], &up = saved[1];
    const at::Tensor dy = grads[0].contiguous();
    at::Tensor dgate = at::empty_like(gate), dup = at::empty_like(up);
    const float *gp = gate.data_ptr<float>(), *up_ = up.data_ptr<float>(),
                *dyp = dy.data_ptr<float>();
    float *dgp = dgate.data_ptr<float>(), *dup_ = dup.data_ptr<float>();
    at::parallel_for(0, gate.numel(), 1 << 16,
                     [&](int64_t begin, int64_t end) { kernel(gp, up_, dyp, dgp, dup_, begin, end); });
    return {dgate, dup};
  }
};

// Rotates pairs (x0, x1) of each [head_dim] row by +angle (forward) or
// -angle (backward); dims past rope_dims are copied.
void rotate(const float* src, float* dst, const float* cos, const float* sin, int64_t B, int64_t T,
            int64_t H, int64_t head_dim, int64_t rope_dims, RopeStyle style, float direction) {
  const int64_t half = rope_dims / 2;
  at::parallel_for(0, B * T, grain_rows(H * head_dim), [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      const int64_t t = bt % T;
      const float *c = cos + t * half, *s = sin + t * half;
      for (int64_t h = 0; h < H; ++h) {
        const float* x = src + (bt * H + h) * head_dim;
        float* y = dst + (bt * H + h) * head_dim;
        if (style == RopeStyle::adjacent_pairs) {
          for (int64_t i = 0; i < half; ++i) {
            const float x0 = x[2 * i], x1 = x[2 * i + 1], sn = direction * s[i];
            y[2 * i] = x0 * c[i] - x1 * sn;
            y[2 * i + 1] = x0 * sn + x1 * c[i];
          }
        } else {
          for (int64_t i = 0; i < half; ++i) {
            const float x0 = x[i], x1 = x[i + half], sn = direction * s[i];
            y[i] = x0 * c[i] - x1 * sn;
            y[i + half] = x0 * sn + x1 * c[i];
          }
        }
        for (int64_t i = rope_dims; i < head_dim; ++i) y[i] = x[i];
      }
    }
  });
}

struct Rope : public torch::autograd::Function<Rope> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos,
                            const at::Tensor& sin, int64_t rope_dims, int64_t style) {
    at::Tensor y = at::empty_like(x);
    rotate(x.data_ptr<float>(), y.data_ptr<float>(), cos.data_ptr<float>(), sin.data_ptr<float>(),
           x.size(0), x.size(1), x.size(2), x.size(3), rope_dims, static_cast<RopeStyle>(style),
           1.0f);
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["rope_dims"] = rope_dims;
    ctx->saved_data["style"] = style;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor dy = grads[0].contiguous();
    at::Tensor dx = at::empty_like(dy);
    rotate(dy.data_ptr<float>(), dx.data_ptr<float>(), saved[0].data_ptr<float>(),
           saved[1].data_ptr<float>(), dy.size(0), dy.size(1), dy.size(2), dy.size(3),
           ctx->saved_data["rope_dims"].toInt(),
           static_cast<RopeStyle>(ctx->saved_data["style"].toInt()), -1.0f);
    return {dx, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor fused_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
                  !weight.requires_grad() && weight.numel() == x.size(-1),
              "fused_rms_norm needs float32 x [..., dim] and a frozen float32 weight [dim]");
  return RmsNorm::apply(x.contiguous(), weight.contiguous(), eps);
}

at::Tensor fused_swiglu(const at::Tensor& gate, const at::Tensor& up) {
  TORCH_CHECK(gate.scalar_type() == at::kFloat && up.scalar_type() == at::kFloat &&
                  gate.sizes() == up.sizes(),
              "fused_swiglu needs float32 gate and up of one shape, got ", gate.sizes(), " and ",
              up.sizes());
  return SwiGlu::apply(gate.contiguous(), up.contiguous());
}

at::Tensor fused_rope(const at::Tensor& x, int64_t pos0, int64_t rope_dims, double base,
                      RopeStyle style) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.dim() == 4 && rope_dims % 2 == 0 &&
                  rope_dims <= x.size(3),
              "fused_rope needs float32 x [B, T, H, head_dim] and even rope_dims <= head_dim");
  const int64_t T = x.size(1), half = rope_dims / 2;
  // theta_i = base^(-2i/rope_dims); angle[t, i] = (pos0 + t) * theta_i, in double like apply_rope
  at::Tensor inv_freq =
      at::pow(base, -at::arange(0, half, at::kDouble) * 2.0 / static_cast<double>(rope_dims));
  at::Tensor angle = at::outer(at::arange(pos0, pos0 + T, at::kDouble), inv_freq).to(at::kFloat);
  return Rope::apply(x.contiguous(), angle.cos().contiguous(), angle.sin().contiguous(), rope_dims,
                     static_cast<int64_t>(style));
}

at::Tensor softmax_rows_in_place(at::Tensor& x) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.device().is_cpu() && x.is_contiguous(),
              "softmax_rows_in_place takes a contiguous CPU float [R, V] tensor, got ", x.sizes(), " ",
              x.scalar_type());
  RECORD_FUNCTION("cleave::softmax_rows_in_place", std::vector<c10::IValue>());  // named in op traces
  const int64_t rows = x.size(0), v = x.size(1);
  at::Tensor lse = at::empty({rows, 1}, x.options());
  const SoftmaxRows kernel = kernels::has_avx512() ? softmax_rows_avx512 : softmax_rows_generic;
  float* xp = x.data_ptr<float>();
  float* lp = lse.data_ptr<float>();
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) { kernel(xp, v, lp, begin, end); });
  return lse;
}

}  // namespace cleave
