// Building blocks for the hand-written CPU kernels (fused attention, norms):
// the build targets plain x86-64, so each kernel is compiled twice, once for
// AVX2+FMA and once generic, from one always-inlined body, and picked at run
// time. Bodies take `template <bool Fma>` so the multiply-add is fused only
// in the AVX2 copy. Internal to model/.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

#define CLEAVE_ALWAYS_INLINE inline __attribute__((always_inline))

#if defined(__x86_64__) && defined(__GNUC__)
#define CLEAVE_TARGET_AVX2 __attribute__((target("avx2,fma")))
// A third copy for the hottest kernels (attention): 16-wide vectors. Clang
// ignores the whole attribute for prefer-vector-width, which it does not take.
#if defined(__clang__)
#define CLEAVE_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#else
#define CLEAVE_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,prefer-vector-width=512")))
#endif
#else
#define CLEAVE_TARGET_AVX2
#define CLEAVE_TARGET_AVX512
#endif

namespace cleave::kernels {

// Tests set this to run the generic copies on an AVX2 machine too.
inline std::atomic<bool>& generic_only() {
  static std::atomic<bool> flag{false};
  return flag;
}

// True when the AVX2+FMA copies should run: the CPU has them and
// generic_only() is off.
inline bool has_avx2_fma() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported && !generic_only().load(std::memory_order_relaxed);
#else
  return false;
#endif
}

// True when the AVX-512 copies should run (AVX-512 F/VL/DQ/BW and not generic_only()).
inline bool has_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool supported =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
  return supported && has_avx2_fma();
#else
  return false;
#endif
}

// a * b + c, fused when Fma (only instantiated inside CLEAVE_TARGET_AVX2 code).
template <bool Fma>
CLEAVE_ALWAYS_INLINE float madd(float a, float b, float c) {
  if constexpr (Fma) {
    return __builtin_fmaf(a, b, c);
  } else {
    return a * b + c;
  }
}

// exp(x) for x <= 88 with about 2 ulp error, branch-free so loops over it
// vectorize (Cephes expf: x = n ln2 + r, polynomial for exp(r), times 2^n).
// Inputs below -87.3 return about 1e-38 rather than 0.
template <bool Fma>
CLEAVE_ALWAYS_INLINE float fast_exp(float x) {
  x = x < 88.3762626647949f ? x : 88.3762626647949f;
  x = x > -87.3365478515625f ? x : -87.3365478515625f;
  // round(x / ln2) by the 1.5 * 2^23 trick (no SSE4.1 rounding needed)
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  float r = madd<Fma>(n, -0.693359375f, x);
  r = madd<Fma>(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = madd<Fma>(p, r, 1.3981999507e-3f);
  p = madd<Fma>(p, r, 8.3334519073e-3f);
  p = madd<Fma>(p, r, 4.1665795894e-2f);
  p = madd<Fma>(p, r, 1.6666665459e-1f);
  p = madd<Fma>(p, r, 5.0000001201e-1f);
  const float e = madd<Fma>(p, r * r, r) + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return e * scale;
}

// Softmax of row[0, len) of scale * row, in place; returns its logsumexp
// (log sum exp(scale * row)). The max and the sum run in 16 lanes, each lane
// its own running value, so both loops vectorize: one running value is a
// chain the compiler may not reorder (float addition is not associative),
// and ran scalar. One exp per entry. The fused attention's rows and the
// chunked loss's logits rows both go through here.
template <bool Fma>
CLEAVE_ALWAYS_INLINE float softmax_row(float* row, int64_t len, float scale) {
  constexpr int64_t kLanes = 16;
  float lane_max[kLanes];
  std::fill_n(lane_max, kLanes, -INFINITY);
  int64_t j = 0;
  for (; j + kLanes <= len; j += kLanes) {
    for (int64_t jj = 0; jj < kLanes; ++jj) lane_max[jj] = std::max(lane_max[jj], row[j + jj]);
  }
  float max = -INFINITY;
  for (; j < len; ++j) max = std::max(max, row[j]);
  for (float lane : lane_max) max = std::max(max, lane);
  max *= scale;
  float lane_sum[kLanes] = {};
  for (j = 0; j + kLanes <= len; j += kLanes) {
    for (int64_t jj = 0; jj < kLanes; ++jj) {
      const float e = fast_exp<Fma>(madd<Fma>(row[j + jj], scale, -max));
      row[j + jj] = e;
      lane_sum[jj] += e;
    }
  }
  float sum = 0;
  for (; j < len; ++j) {
    row[j] = fast_exp<Fma>(madd<Fma>(row[j], scale, -max));
    sum += row[j];
  }
  for (float lane : lane_sum) sum += lane;
  const float inv = 1.0f / sum;
  for (j = 0; j < len; ++j) row[j] *= inv;
  return max + std::log(sum);
}

}  // namespace cleave::kernels
