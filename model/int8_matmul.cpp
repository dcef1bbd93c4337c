#include "model/int8_matmul.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "model/cpu_kernels.h"
#include "model/onednn_product.h"

namespace cleave {
namespace {

// ---- rounding rows to int8 -------------------------------------------------

constexpr float kMinScale = 1e-12f;

// One row: v = x (* column_scales); scale = max(max|v| / 127, 1e-12);
// codes = nearest(v / scale). Both copies below compute the same floats in
// the same order, so they give identical codes.
void quantize_row_generic(const float* x, const float* cs, int64_t k, int8_t* codes, float* scale_out) {
  float absmax = 0;
  for (int64_t i = 0; i < k; ++i) absmax = std::max(absmax, std::fabs(cs ? x[i] * cs[i] : x[i]));
  const float scale = std::max(absmax / 127.0f, kMinScale);
  for (int64_t i = 0; i < k; ++i) {
    const float code = std::nearbyint((cs ? x[i] * cs[i] : x[i]) / scale);  // ties to even
    codes[i] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, code)));
  }
  *scale_out = scale;
}

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12's AVX-512 intrinsics start results from _mm512_undefined_ps(), which
// -Wuninitialized reports as used uninitialized when inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// x[i, i + 16) (* cs), lanes outside m zero.
CLEAVE_TARGET_AVX512 CLEAVE_ALWAYS_INLINE __m512 load_row_part(const float* x, const float* cs, int64_t i,
                                                               __mmask16 m) {
  const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
  return cs ? _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, cs + i)) : v;
}

CLEAVE_TARGET_AVX512 void quantize_row_avx512(const float* x, const float* cs, int64_t k, int8_t* codes,
                                              float* scale_out) {
  const int64_t full = k - k % 16;
  __m512 vmax = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 m = i < full ? __mmask16(0xFFFF) : __mmask16((1u << (k - i)) - 1);
    vmax = _mm512_max_ps(vmax, _mm512_abs_ps(load_row_part(x, cs, i, m)));
  }
  const float scale = std::max(_mm512_reduce_max_ps(vmax) / 127.0f, kMinScale);
  const __m512 vscale = _mm512_set1_ps(scale);
  const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 m = i < full ? __mmask16(0xFFFF) : __mmask16((1u << (k - i)) - 1);
    __m512 q = _mm512_roundscale_ps(_mm512_div_ps(load_row_part(x, cs, i, m), vscale),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_min_ps(hi, _mm512_max_ps(lo, q));
    _mm512_mask_cvtsepi32_storeu_epi8(codes + i, m, _mm512_cvtps_epi32(q));
  }
  *scale_out = scale;
}
#pragma GCC diagnostic pop
#endif

using QuantizeRow = void (*)(const float*, const float*, int64_t, int8_t*, float*);

QuantizeRow pick_quantize_row() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (kernels::has_avx512()) return quantize_row_avx512;
#endif
  return quantize_row_generic;
}

// ---- the scales on the int32 products --------------------------------------

// out[m, :] *= row_scales[m] (* column_scales[:]), in that order.
CLEAVE_ALWAYS_INLINE void scale_rows_body(float* out, int64_t ldc, const float* row_scales,
                                          const float* column_scales, int64_t begin, int64_t end,
                                          int64_t n) {
  for (int64_t r = begin; r < end; ++r) {
    float* o = out + r * ldc;
    const float s = row_scales[r];
    if (column_scales) {
      for (int64_t j = 0; j < n; ++j) o[j] = o[j] * s * column_scales[j];
    } else {
      for (int64_t j = 0; j < n; ++j) o[j] = o[j] * s;
    }
  }
}
void scale_rows_generic(float* out, int64_t ldc, const float* rs, const float* cs, int64_t begin, int64_t end,
                        int64_t n) {
  scale_rows_body(out, ldc, rs, cs, begin, end, n);
}
CLEAVE_TARGET_AVX512 void scale_rows_avx512(float* out, int64_t ldc, const float* rs, const float* cs,
                                            int64_t begin, int64_t end, int64_t n) {
  scale_rows_body(out, ldc, rs, cs, begin, end, n);
}

void scale_rows(at::Tensor& out, const at::Tensor& row_scales, const float* column_scales) {
  const auto kernel = kernels::has_avx512() ? scale_rows_avx512 : scale_rows_generic;
  float* o = out.data_ptr<float>();
  const float* rs = row_scales.data_ptr<float>();
  const int64_t ldc = out.stride(0), n = out.size(1);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(n, 1));
  at::parallel_for(0, out.size(0), grain,
                   [&](int64_t begin, int64_t end) { kernel(o, ldc, rs, column_scales, begin, end, n); });
}

// ---- oneDNN products ----------------------------------------------------------

void check_codes(const at::Tensor& codes, const char* what) {
  if (!codes.defined() || codes.dim() != 2 || codes.scalar_type() != at::kChar || !codes.is_contiguous() ||
      !codes.device().is_cpu()) {
    throw std::invalid_argument(std::string("int8 product: ") + what + " codes must be contiguous CPU int8 [R, K]");
  }
}

void check_rows(const Int8Rows& rows, const char* what) {
  check_codes(rows.codes, what);
  if (!rows.scales.defined() || rows.scales.scalar_type() != at::kFloat || !rows.scales.is_contiguous() ||
      rows.scales.numel() != rows.codes.size(0)) {
    throw std::invalid_argument(std::string("int8 product: ") + what + " scales must be contiguous float [R]");
  }
}

}  // namespace

Int8Rows quantize_rows(const at::Tensor& x, const at::Tensor& column_scales) {
  if (x.dim() != 2 || x.scalar_type() != at::kFloat || !x.device().is_cpu()) {
    throw std::invalid_argument("quantize_rows: x must be a CPU float [R, K]");
  }
  const at::Tensor xc = x.contiguous();
  const int64_t r = xc.size(0), k = xc.size(1);
  at::Tensor cs;
  if (column_scales.defined()) {
    if (column_scales.scalar_type() != at::kFloat || column_scales.numel() != k) {
      throw std::invalid_argument("quantize_rows: column_scales must be float [" + std::to_string(k) + "]");
    }
    cs = column_scales.contiguous();
  }
  Int8Rows rows{at::empty({r, k}, at::kChar), at::empty({r}, at::kFloat)};
  const QuantizeRow kernel = pick_quantize_row();
  const float* xp = xc.data_ptr<float>();
  const float* csp = cs.defined() ? cs.data_ptr<float>() : nullptr;
  int8_t* codes = rows.codes.data_ptr<int8_t>();
  float* scales = rows.scales.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(k, 1));
  at::parallel_for(0, r, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) kernel(xp + i * k, csp, k, codes + i * k, scales + i);
  });
  return rows;
}

void int8_product_nt(const Int8Rows& a, const Int8Rows& b, at::Tensor& out) {
  check_rows(a, "a");
  check_rows(b, "b");
  const int64_t m = a.codes.size(0), k = a.codes.size(1), n = b.codes.size(0);
  if (b.codes.size(1) != k) {
    throw std::invalid_argument("int8_product_nt: a is [" + std::to_string(m) + ", " + std::to_string(k) +
                                "] but b's rows have " + std::to_string(b.codes.size(1)) + " columns");
  }
  check_product_out(out, m, n, ProductOperands::s8);
  if (m == 0 || n == 0) return;
  if (k == 0) {
    out.zero_();
    return;
  }
  run_onednn_product({m, k, n, out.stride(0), true, ProductOperands::s8, false}, a.codes.data_ptr<int8_t>(),
                     b.codes.data_ptr<int8_t>(), out.data_ptr<float>());
  scale_rows(out, a.scales, b.scales.data_ptr<float>());
}

void int8_product_nn(const Int8Rows& a, const at::Tensor& b_codes, at::Tensor& out) {
  check_rows(a, "a");
  check_codes(b_codes, "b");
  const int64_t m = a.codes.size(0), n = a.codes.size(1), k = b_codes.size(1);
  if (b_codes.size(0) != n) {
    throw std::invalid_argument("int8_product_nn: a has " + std::to_string(n) + " columns but b has " +
                                std::to_string(b_codes.size(0)) + " rows");
  }
  check_product_out(out, m, k, ProductOperands::s8);
  if (m == 0 || k == 0) return;
  if (n == 0) {
    out.zero_();
    return;
  }
  run_onednn_product({m, n, k, out.stride(0), false, ProductOperands::s8, false}, a.codes.data_ptr<int8_t>(),
                     b_codes.data_ptr<int8_t>(), out.data_ptr<float>());
  scale_rows(out, a.scales, nullptr);
}

bool int8_products_built() { return onednn_products_built(); }

bool cpu_has_int8_dot() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool supported = __builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni");
  return supported;
#else
  return false;
#endif
}

}  // namespace cleave
