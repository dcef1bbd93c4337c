#include "model/fused_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "model/cpu_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CLEAVE_ATTENTION_D8_AVX512 1
#endif

namespace cleave {
namespace {

using kernels::madd;

constexpr int64_t kRows = 4;   // query rows per tile
constexpr int64_t kCols = 16;  // key columns per register block

// Shapes and raw pointers of one attention call. Row (b, t, h) of q/out/grads
// starts at ((b * T + t) * Hq + h) * d; row (b, s, g) of k/v at ((b * S + s) * Hkv + g) * d.
struct Problem {
  int64_t B, T, S, Hq, Hkv, d;
  float scale;
  int64_t q_row(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * Hq + h) * d; }
  int64_t kv_row(int64_t b, int64_t s, int64_t g) const { return ((b * S + s) * Hkv + g) * d; }
  int64_t q_stride() const { return Hq * d; }
  int64_t kv_stride() const { return Hkv * d; }
  int64_t visible(int64_t t) const { return S - T + t + 1; }  // keys query t may see
};

// c[r][j] = sum_k a[r][k] * bt[k][j] for r < R, j < n (a: rows lda apart,
// bt: [d][ldbt], c: rows ldc apart).
template <bool Fma, int R>
CLEAVE_ALWAYS_INLINE void rows_times_bt(const float* a, int64_t lda, const float* bt,
                                        int64_t ldbt, int64_t d, int64_t n, float* c,
                                        int64_t ldc) {
  int64_t j0 = 0;
  for (; j0 + kCols <= n; j0 += kCols) {
    float acc[R][kCols] = {};
    for (int64_t k = 0; k < d; ++k) {
      const float* b = bt + k * ldbt + j0;
      for (int r = 0; r < R; ++r) {
        const float av = a[r * lda + k];
        for (int64_t jj = 0; jj < kCols; ++jj) acc[r][jj] = madd<Fma>(av, b[jj], acc[r][jj]);
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int64_t jj = 0; jj < kCols; ++jj) c[r * ldc + j0 + jj] = acc[r][jj];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int64_t j = j0; j < n; ++j) c[r * ldc + j] = 0;
    for (int64_t k = 0; k < d; ++k) {
      const float av = a[r * lda + k];
      for (int64_t j = j0; j < n; ++j) c[r * ldc + j] = madd<Fma>(av, bt[k * ldbt + j], c[r * ldc + j]);
    }
  }
}

// c[r][k] = alpha * sum_{j < n} p[r][j] * m[j][k] for r < R, k < d, in column
// chunks of W (p: rows ldp apart, m: rows ldm apart, c: rows ldc apart).
template <bool Fma, int R, int W>
CLEAVE_ALWAYS_INLINE void rows_times_m_chunked(const float* p, int64_t ldp, const float* m,
                                               int64_t ldm, int64_t d, int64_t n, float alpha,
                                               float* c, int64_t ldc) {
  for (int64_t k0 = 0; k0 < d; k0 += W) {
    float acc[R][W] = {};
    for (int64_t j = 0; j < n; ++j) {
      const float* mj = m + j * ldm + k0;
      for (int r = 0; r < R; ++r) {
        const float pv = p[r * ldp + j];
        for (int kk = 0; kk < W; ++kk) acc[r][kk] = madd<Fma>(pv, mj[kk], acc[r][kk]);
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int kk = 0; kk < W; ++kk) c[r * ldc + k0 + kk] = alpha * acc[r][kk];
    }
  }
}

template <bool Fma, int R>
CLEAVE_ALWAYS_INLINE void rows_times_m(const float* p, int64_t ldp, const float* m, int64_t ldm,
                                       int64_t d, int64_t n, float alpha, float* c, int64_t ldc) {
  if (d % 16 == 0) {
    rows_times_m_chunked<Fma, R, 16>(p, ldp, m, ldm, d, n, alpha, c, ldc);
  } else if (d % 8 == 0) {
    rows_times_m_chunked<Fma, R, 8>(p, ldp, m, ldm, d, n, alpha, c, ldc);
  } else {
    for (int r = 0; r < R; ++r) {
      for (int64_t k = 0; k < d; ++k) {
        float s = 0;
        for (int64_t j = 0; j < n; ++j) s = madd<Fma>(p[r * ldp + j], m[j * ldm + k], s);
        c[r * ldc + k] = alpha * s;
      }
    }
  }
}

// g[j][k] += alpha * sum_r p[r][j] * a[r][k] for j < n, k < d (g: [n, d] contiguous).
template <bool Fma, int R>
CLEAVE_ALWAYS_INLINE void accumulate_pt_times_rows(const float* p, int64_t ldp, const float* a,
                                                   int64_t lda, int64_t d, int64_t n, float alpha,
                                                   float* g) {
  for (int64_t j = 0; j < n; ++j) {
    float* gj = g + j * d;
    for (int r = 0; r < R; ++r) {
      const float pv = alpha * p[r * ldp + j];
      const float* ar = a + r * lda;
      for (int64_t k = 0; k < d; ++k) gj[k] = madd<Fma>(pv, ar[k], gj[k]);
    }
  }
}

// dst[k][j] = src[j][k] for j < n, k < d (src rows ld apart): K or V of one
// kv head as [d, S] so score rows vectorize along keys.
CLEAVE_ALWAYS_INLINE void pack_transposed(const float* src, int64_t ld, int64_t d, int64_t n,
                                          float* dst) {
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < d; ++k) dst[k * n + j] = src[j * ld + k];
  }
}

// Softmax of R score rows in place given each row's visible length; writes
// each row's logsumexp (of the scaled scores) to lse[r].
template <bool Fma, int R>
CLEAVE_ALWAYS_INLINE void softmax_rows(float* s, int64_t lds, const int64_t* visible, int64_t n,
                                       float scale, float* lse) {
  for (int r = 0; r < R; ++r) {
    float* row = s + r * lds;
    lse[r] = kernels::softmax_row<Fma>(row, visible[r], scale);
    for (int64_t j = visible[r]; j < n; ++j) row[j] = 0;
  }
}

// Probabilities of R rows recomputed from scores and saved logsumexp.
template <bool Fma, int R>
CLEAVE_ALWAYS_INLINE void probabilities(float* s, int64_t lds, const int64_t* visible, int64_t n,
                                        float scale, const float* lse) {
  for (int r = 0; r < R; ++r) {
    float* row = s + r * lds;
    const float shift = -lse[r];
    for (int64_t j = 0; j < visible[r]; ++j) row[j] = kernels::fast_exp<Fma>(madd<Fma>(row[j], scale, shift));
    for (int64_t j = visible[r]; j < n; ++j) row[j] = 0;
  }
}

// ds = p * (dp - delta) for R rows (lds apart) of n entries, stored over dp:
// the softmax's backward, delta[r] = sum_k dout * out of row r.
template <int R>
CLEAVE_ALWAYS_INLINE void softmax_backward_rows(const float* p, float* dp, int64_t lds, int64_t n,
                                                const float* delta) {
  for (int r = 0; r < R; ++r) {
    const float dr = delta[r];
    for (int64_t j = 0; j < n; ++j) dp[r * lds + j] = p[r * lds + j] * (dp[r * lds + j] - dr);
  }
}

// Scratch of one task, reused across its tiles.
struct Scratch {
  std::vector<float> kt, vt;   // [d, S]
  std::vector<float> s, dp;    // [kRows, S]
  std::vector<float> dk, dv;   // [S, d] ([d, S] in the d = 8 AVX-512 tiles)
};

#ifdef CLEAVE_ATTENTION_D8_AVX512
// Heads of 8 (stories260K) in the AVX-512 copy. With d = 8 every product of
// a tile is two FMAs per score, so the tile's passes over [R, n] are what
// cost; the general forms above vectorize them along d, 8 lanes at a time,
// with shuffles. These run every product 16 keys to a register instead, on
// K and V packed as [8, S] (and dK, dV accumulated as [8, S]): q k^T and
// dout v^T as broadcasts of the row times the packed rows, p v and ds k as
// dot products along the keys reduced once per row, p^T dout and ds^T q as
// broadcasts into the packed accumulators.

// Lanes j0 .. j0 + 15 that lie below n.
CLEAVE_TARGET_AVX512 inline __mmask16 lanes_below(int64_t j0, int64_t n) {
  const int64_t left = n - j0;
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

// The lane sums of eight registers: [sum(a[0]), ..., sum(a[7])].
CLEAVE_TARGET_AVX512 inline __m256 lane_sums(const __m512 (&a)[8]) {
  // (Masked extracts: GCC 12 warns on the unmasked ones' undefined sources.)
  const __m256 zero = _mm256_setzero_ps();
  __m256 w[8];
  for (int k = 0; k < 8; ++k) {
    w[k] = _mm256_add_ps(_mm512_mask_extractf32x8_ps(zero, 0xFF, a[k], 0),
                         _mm512_mask_extractf32x8_ps(zero, 0xFF, a[k], 1));
  }
  // hadd of hadds leaves [s0 s1 s2 s3 | s0 s1 s2 s3] of lanes 0-3 and 4-7
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(w[0], w[1]), _mm256_hadd_ps(w[2], w[3]));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(w[4], w[5]), _mm256_hadd_ps(w[6], w[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// s[r][j] = sum_k a[r][k] * mt[k][j] for r < R, j < n (a: rows lda apart,
// mt: [8, ldm], s: rows lds apart).
template <int R>
CLEAVE_TARGET_AVX512 CLEAVE_ALWAYS_INLINE void rows_times_packed_d8(const float* a, int64_t lda,
                                                                    const float* mt, int64_t ldm,
                                                                    int64_t n, float* s,
                                                                    int64_t lds) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 live = lanes_below(j, n);
    __m512 m[8];
    for (int k = 0; k < 8; ++k) m[k] = _mm512_maskz_loadu_ps(live, mt + k * ldm + j);
    for (int r = 0; r < R; ++r) {
      const float* ar = a + r * lda;
      __m512 acc = _mm512_mul_ps(_mm512_set1_ps(ar[0]), m[0]);
      for (int k = 1; k < 8; ++k) acc = _mm512_fmadd_ps(_mm512_set1_ps(ar[k]), m[k], acc);
      _mm512_mask_storeu_ps(s + r * lds + j, live, acc);
    }
  }
}

// c[r][k] = alpha * sum_{j < n} p[r][j] * mt[k][j] for r < Rb (Rb <= 2), k < 8.
template <int Rb>
CLEAVE_TARGET_AVX512 CLEAVE_ALWAYS_INLINE void dot_packed_d8_block(const float* p, int64_t ldp,
                                                                   const float* mt, int64_t ldm,
                                                                   int64_t n, float alpha,
                                                                   float* c, int64_t ldc) {
  __m512 acc[Rb][8];
  for (int r = 0; r < Rb; ++r) {
    for (int k = 0; k < 8; ++k) acc[r][k] = _mm512_setzero_ps();
  }
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 live = lanes_below(j, n);
    __m512 pr[Rb];
    for (int r = 0; r < Rb; ++r) pr[r] = _mm512_maskz_loadu_ps(live, p + r * ldp + j);
    for (int k = 0; k < 8; ++k) {
      const __m512 m = _mm512_maskz_loadu_ps(live, mt + k * ldm + j);
      for (int r = 0; r < Rb; ++r) acc[r][k] = _mm512_fmadd_ps(pr[r], m, acc[r][k]);
    }
  }
  for (int r = 0; r < Rb; ++r) {
    _mm256_storeu_ps(c + r * ldc, _mm256_mul_ps(lane_sums(acc[r]), _mm256_set1_ps(alpha)));
  }
}

template <int R>
CLEAVE_TARGET_AVX512 CLEAVE_ALWAYS_INLINE void dot_packed_d8(const float* p, int64_t ldp,
                                                             const float* mt, int64_t ldm,
                                                             int64_t n, float alpha, float* c,
                                                             int64_t ldc) {
  int r = 0;
  for (; r + 2 <= R; r += 2) {
    dot_packed_d8_block<2>(p + r * ldp, ldp, mt, ldm, n, alpha, c + r * ldc, ldc);
  }
  if (r < R) dot_packed_d8_block<1>(p + r * ldp, ldp, mt, ldm, n, alpha, c + r * ldc, ldc);
}

// gt[k][j] += alpha * sum_r p[r][j] * a[r][k] for j < n, k < 8 (gt: [8, ldg]).
template <int R>
CLEAVE_TARGET_AVX512 CLEAVE_ALWAYS_INLINE void accumulate_packed_d8(const float* p, int64_t ldp,
                                                                    const float* a, int64_t lda,
                                                                    int64_t n, float alpha,
                                                                    float* gt, int64_t ldg) {
  float coef[R][8];
  for (int r = 0; r < R; ++r) {
    for (int k = 0; k < 8; ++k) coef[r][k] = alpha * a[r * lda + k];
  }
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 live = lanes_below(j, n);
    __m512 pr[R];
    for (int r = 0; r < R; ++r) pr[r] = _mm512_maskz_loadu_ps(live, p + r * ldp + j);
    for (int k = 0; k < 8; ++k) {
      float* gk = gt + k * ldg + j;
      __m512 acc = _mm512_maskz_loadu_ps(live, gk);
      for (int r = 0; r < R; ++r) acc = _mm512_fmadd_ps(_mm512_set1_ps(coef[r][k]), pr[r], acc);
      _mm512_mask_storeu_ps(gk, live, acc);
    }
  }
}

// forward_tile for d = 8 (w.vt packed too).
template <int R>
CLEAVE_TARGET_AVX512 void forward_tile_d8(const Problem& P, const float* q, float* out, float* lse,
                                          Scratch& w, int64_t b, int64_t h, int64_t t0) {
  int64_t visible[R];
  for (int r = 0; r < R; ++r) visible[r] = P.visible(t0 + r);
  const int64_t n = visible[R - 1];
  rows_times_packed_d8<R>(q + P.q_row(b, t0, h), P.q_stride(), w.kt.data(), P.S, n, w.s.data(),
                          P.S);
  softmax_rows<true, R>(w.s.data(), P.S, visible, n, P.scale, lse + (b * P.Hq + h) * P.T + t0);
  dot_packed_d8<R>(w.s.data(), P.S, w.vt.data(), P.S, n, 1.0f, out + P.q_row(b, t0, h),
                   P.q_stride());
}

// backward_tile for d = 8: dK and dV accumulate packed, as [8, S] in w.dk, w.dv.
template <int R>
CLEAVE_TARGET_AVX512 void backward_tile_d8(const Problem& P, const float* q, const float* dout,
                                           const float* delta, const float* lse, float* dq,
                                           Scratch& w, int64_t b, int64_t h, int64_t t0) {
  int64_t visible[R];
  for (int r = 0; r < R; ++r) visible[r] = P.visible(t0 + r);
  const int64_t n = visible[R - 1];
  const int64_t row = (b * P.Hq + h) * P.T + t0;
  const float* qr = q + P.q_row(b, t0, h);
  const float* doutr = dout + P.q_row(b, t0, h);
  float* p = w.s.data();
  float* dp = w.dp.data();
  rows_times_packed_d8<R>(qr, P.q_stride(), w.kt.data(), P.S, n, p, P.S);
  probabilities<true, R>(p, P.S, visible, n, P.scale, lse + row);
  rows_times_packed_d8<R>(doutr, P.q_stride(), w.vt.data(), P.S, n, dp, P.S);
  accumulate_packed_d8<R>(p, P.S, doutr, P.q_stride(), n, 1.0f, w.dv.data(), P.S);
  softmax_backward_rows<R>(p, dp, P.S, n, delta + row);  // ds, over dp
  dot_packed_d8<R>(dp, P.S, w.kt.data(), P.S, n, P.scale, dq + P.q_row(b, t0, h), P.q_stride());
  accumulate_packed_d8<R>(dp, P.S, qr, P.q_stride(), n, P.scale, w.dk.data(), P.S);
}
#endif

// One tile of R query rows starting at t0 of head h, batch b (forward).
template <bool Fma, int R>
CLEAVE_ALWAYS_INLINE void forward_tile(const Problem& P, const float* q, const float* v,
                                       float* out, float* lse, Scratch& w, int64_t b, int64_t h,
                                       int64_t t0) {
  const int64_t g = h / (P.Hq / P.Hkv);
  int64_t visible[R];
  for (int r = 0; r < R; ++r) visible[r] = P.visible(t0 + r);
  const int64_t n = visible[R - 1];
  rows_times_bt<Fma, R>(q + P.q_row(b, t0, h), P.q_stride(), w.kt.data(), P.S, P.d, n,
                        w.s.data(), P.S);
  softmax_rows<Fma, R>(w.s.data(), P.S, visible, n, P.scale, lse + (b * P.Hq + h) * P.T + t0);
  rows_times_m<Fma, R>(w.s.data(), P.S, v + P.kv_row(b, 0, g), P.kv_stride(), P.d, n, 1.0f,
                       out + P.q_row(b, t0, h), P.q_stride());
}

// All query rows of head h in batch b.
template <bool Fma, bool Wide>
CLEAVE_ALWAYS_INLINE void forward_head_body(const Problem& P, const float* q, const float* k,
                                            const float* v, float* out, float* lse, int64_t b,
                                            int64_t h) {
  thread_local Scratch w;
  w.kt.resize(P.d * P.S);
  w.s.resize(kRows * P.S);
  const int64_t g = h / (P.Hq / P.Hkv);
  pack_transposed(k + P.kv_row(b, 0, g), P.kv_stride(), P.d, P.S, w.kt.data());
#ifdef CLEAVE_ATTENTION_D8_AVX512
  if constexpr (Wide) {
    if (P.d == 8) {
      w.vt.resize(P.d * P.S);
      pack_transposed(v + P.kv_row(b, 0, g), P.kv_stride(), P.d, P.S, w.vt.data());
      int64_t t = 0;
      for (; t + kRows <= P.T; t += kRows) forward_tile_d8<kRows>(P, q, out, lse, w, b, h, t);
      for (; t < P.T; ++t) forward_tile_d8<1>(P, q, out, lse, w, b, h, t);
      return;
    }
  }
#endif
  int64_t t = 0;
  for (; t + kRows <= P.T; t += kRows) forward_tile<Fma, kRows>(P, q, v, out, lse, w, b, h, t);
  for (; t < P.T; ++t) forward_tile<Fma, 1>(P, q, v, out, lse, w, b, h, t);
}

// Backward of one tile of R rows of head h: dq rows (owned by this tile),
// dk/dv of the kv head accumulated in the scratch.
template <bool Fma, int R>
CLEAVE_ALWAYS_INLINE void backward_tile(const Problem& P, const float* q, const float* k,
                                        const float* dout, const float* delta, const float* lse,
                                        float* dq, Scratch& w, int64_t b, int64_t h, int64_t t0) {
  const int64_t g = h / (P.Hq / P.Hkv);
  int64_t visible[R];
  for (int r = 0; r < R; ++r) visible[r] = P.visible(t0 + r);
  const int64_t n = visible[R - 1];
  const int64_t row = (b * P.Hq + h) * P.T + t0;
  float* p = w.s.data();
  float* dp = w.dp.data();
  // p = softmax(q k^T * scale), dp = dout v^T
  rows_times_bt<Fma, R>(q + P.q_row(b, t0, h), P.q_stride(), w.kt.data(), P.S, P.d, n, p, P.S);
  probabilities<Fma, R>(p, P.S, visible, n, P.scale, lse + row);
  rows_times_bt<Fma, R>(dout + P.q_row(b, t0, h), P.q_stride(), w.vt.data(), P.S, P.d, n, dp,
                        P.S);
  // dv += p^T dout
  accumulate_pt_times_rows<Fma, R>(p, P.S, dout + P.q_row(b, t0, h), P.q_stride(), P.d, n, 1.0f,
                                   w.dv.data());
  softmax_backward_rows<R>(p, dp, P.S, n, delta + row);  // ds, over dp
  // dq = scale * ds k, dk += scale * ds^T q
  rows_times_m<Fma, R>(dp, P.S, k + P.kv_row(b, 0, g), P.kv_stride(), P.d, n, P.scale,
                       dq + P.q_row(b, t0, h), P.q_stride());
  accumulate_pt_times_rows<Fma, R>(dp, P.S, q + P.q_row(b, t0, h), P.q_stride(), P.d, n, P.scale,
                                   w.dk.data());
}

// Every query head of kv head g in batch b: owns dk/dv of (b, g).
template <bool Fma, bool Wide>
CLEAVE_ALWAYS_INLINE void backward_group_body(const Problem& P, const float* q, const float* k,
                                              const float* v, const float* dout,
                                              const float* delta, const float* lse, float* dq,
                                              float* dk, float* dv, int64_t b, int64_t g) {
  thread_local Scratch w;
  w.kt.resize(P.d * P.S);
  w.vt.resize(P.d * P.S);
  w.s.resize(kRows * P.S);
  w.dp.resize(kRows * P.S);
  w.dk.assign(P.S * P.d, 0.0f);
  w.dv.assign(P.S * P.d, 0.0f);
  pack_transposed(k + P.kv_row(b, 0, g), P.kv_stride(), P.d, P.S, w.kt.data());
  pack_transposed(v + P.kv_row(b, 0, g), P.kv_stride(), P.d, P.S, w.vt.data());
  const int64_t group = P.Hq / P.Hkv;
#ifdef CLEAVE_ATTENTION_D8_AVX512
  if constexpr (Wide) {
    if (P.d == 8) {
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        int64_t t = 0;
        for (; t + kRows <= P.T; t += kRows) {
          backward_tile_d8<kRows>(P, q, dout, delta, lse, dq, w, b, h, t);
        }
        for (; t < P.T; ++t) backward_tile_d8<1>(P, q, dout, delta, lse, dq, w, b, h, t);
      }
      for (int64_t s = 0; s < P.S; ++s) {  // [8, S] -> rows of [S, Hkv, 8]
        for (int64_t c = 0; c < 8; ++c) {
          dk[P.kv_row(b, s, g) + c] = w.dk[c * P.S + s];
          dv[P.kv_row(b, s, g) + c] = w.dv[c * P.S + s];
        }
      }
      return;
    }
  }
#endif
  for (int64_t h = g * group; h < (g + 1) * group; ++h) {
    int64_t t = 0;
    for (; t + kRows <= P.T; t += kRows) {
      backward_tile<Fma, kRows>(P, q, k, dout, delta, lse, dq, w, b, h, t);
    }
    for (; t < P.T; ++t) backward_tile<Fma, 1>(P, q, k, dout, delta, lse, dq, w, b, h, t);
  }
  for (int64_t s = 0; s < P.S; ++s) {
    std::copy_n(w.dk.data() + s * P.d, P.d, dk + P.kv_row(b, s, g));
    std::copy_n(w.dv.data() + s * P.d, P.d, dv + P.kv_row(b, s, g));
  }
}

void forward_head_generic(const Problem& P, const float* q, const float* k, const float* v,
                          float* out, float* lse, int64_t b, int64_t h) {
  forward_head_body<false, false>(P, q, k, v, out, lse, b, h);
}
CLEAVE_TARGET_AVX2 void forward_head_avx2(const Problem& P, const float* q, const float* k,
                                          const float* v, float* out, float* lse, int64_t b,
                                          int64_t h) {
  forward_head_body<true, false>(P, q, k, v, out, lse, b, h);
}
CLEAVE_TARGET_AVX512 void forward_head_avx512(const Problem& P, const float* q, const float* k,
                                              const float* v, float* out, float* lse, int64_t b,
                                              int64_t h) {
  forward_head_body<true, true>(P, q, k, v, out, lse, b, h);
}
void backward_group_generic(const Problem& P, const float* q, const float* k, const float* v,
                            const float* dout, const float* delta, const float* lse, float* dq,
                            float* dk, float* dv, int64_t b, int64_t g) {
  backward_group_body<false, false>(P, q, k, v, dout, delta, lse, dq, dk, dv, b, g);
}
CLEAVE_TARGET_AVX2 void backward_group_avx2(const Problem& P, const float* q, const float* k,
                                            const float* v, const float* dout, const float* delta,
                                            const float* lse, float* dq, float* dk, float* dv,
                                            int64_t b, int64_t g) {
  backward_group_body<true, false>(P, q, k, v, dout, delta, lse, dq, dk, dv, b, g);
}
CLEAVE_TARGET_AVX512 void backward_group_avx512(const Problem& P, const float* q, const float* k,
                                                const float* v, const float* dout,
                                                const float* delta, const float* lse, float* dq,
                                                float* dk, float* dv, int64_t b, int64_t g) {
  backward_group_body<true, true>(P, q, k, v, dout, delta, lse, dq, dk, dv, b, g);
}

// The widest copy this CPU runs.
auto pick_forward() {
  if (kernels::has_avx512()) return forward_head_avx512;
  return kernels::has_avx2_fma() ? forward_head_avx2 : forward_head_generic;
}
auto pick_backward() {
  if (kernels::has_avx512()) return backward_group_avx512;
  return kernels::has_avx2_fma() ? backward_group_avx2 : backward_group_generic;
}

Problem problem_of(const at::Tensor& q, const at::Tensor& k) {
  Problem P;
  P.B = q.size(0), P.T = q.size(1), P.Hq = q.size(2), P.d = q.size(3);
  P.S = k.size(1), P.Hkv = k.size(2);
  P.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(P.d)));
  return P;
}

// out: [B, T, Hq, d]; lse: [B, Hq, T]
void attention_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       at::Tensor& out, at::Tensor& lse) {
  const Problem P = problem_of(q, k);
  out = at::empty_like(q);
  lse = at::empty({P.B, P.Hq, P.T}, q.options());
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  float *op = out.data_ptr<float>(), *lp = lse.data_ptr<float>();
  const auto head = pick_forward();
  at::parallel_for(0, P.B * P.Hq, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) head(P, qp, kp, vp, op, lp, i / P.Hq, i % P.Hq);
  });
}

struct FusedCausalAttention : public torch::autograd::Function<FusedCausalAttention> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q,
                            const at::Tensor& k, const at::Tensor& v) {
    at::Tensor out, lse;
    attention_forward(q, k, v, out, lse);
    ctx->save_for_backward({q, k, v, out, lse});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3],
                     &lse = saved[4];
    const at::Tensor dout = grads[0].contiguous();             // [B, T, Hq, d]
    const Problem P = problem_of(q, k);
    // delta[b, h, t] = sum_k dout * out: the softmax backward's row term
    const at::Tensor delta = (dout * out).sum(-1).permute({0, 2, 1}).contiguous();  // [B, Hq, T]
    at::Tensor dq = at::empty_like(q), dk = at::empty_like(k), dv = at::empty_like(v);
    const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
    const float *gp = dout.data_ptr<float>(), *dp = delta.data_ptr<float>(),
                *lp = lse.data_ptr<float>();
    float *dqp = dq.data_ptr<float>(), *dkp = dk.data_ptr<float>(), *dvp = dv.data_ptr<float>();
    const auto group = pick_backward();
    at::parallel_for(0, P.B * P.Hkv, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        group(P, qp, kp, vp, gp, dp, lp, dqp, dkp, dvp, i / P.Hkv, i % P.Hkv);
      }
    });
    return {dq, dk, dv};
  }
};

}  // namespace

at::Tensor fused_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "attention expects q [B, T, Hq, d] and k, v [B, S, Hkv, d], got ", q.sizes(), ", ",
              k.sizes(), ", ", v.sizes());
  TORCH_CHECK(q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat &&
                  v.scalar_type() == at::kFloat,
              "fused attention is float32 only; use causal_attention for other dtypes");
  TORCH_CHECK(k.sizes() == v.sizes() && q.size(0) == k.size(0) && q.size(3) == k.size(3),
              "attention shapes do not match: q ", q.sizes(), ", k ", k.sizes(), ", v ", v.sizes());
  TORCH_CHECK(k.size(1) >= q.size(1), "attention has ", q.size(1), " queries but only ", k.size(1),
              " keys");
  TORCH_CHECK(q.size(2) % k.size(2) == 0, "query heads (", q.size(2),
              ") must be a multiple of kv heads (", k.size(2), ")");
  return FusedCausalAttention::apply(q.contiguous(), k.contiguous(), v.contiguous());
}

}  // namespace cleave
