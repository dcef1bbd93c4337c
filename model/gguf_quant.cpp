// ggml block formats. Layouts (ggml-common.h), all little endian, fp16 = IEEE half.
// In the blocks of 32 (and each 32-value group of IQ4_XS), element j < 16 is
// the low nibble of qs[j] and element 16 + j the high one.
//   Q8_0 (32 values, 34 bytes):  fp16 d | int8 qs[32]                 x = d * q
//   Q4_0 (32 values, 18 bytes):  fp16 d | u8 qs[16]                   x = d * (q - 8)
//   Q4_1 (32 values, 20 bytes):  fp16 d | fp16 m | u8 qs[16]          x = d * q + m
//   Q5_0 (32 values, 22 bytes):  fp16 d | u32 qh | u8 qs[16]; bit j of qh is
//                                element j's fifth bit;               x = d * (q - 16)
//   Q5_1 (32 values, 24 bytes):  fp16 d | fp16 m | u32 qh | u8 qs[16] x = d * q + m
//   IQ4_NL (32 values, 18 bytes): fp16 d | u8 qs[16]; the 4-bit code picks one
//        of 16 non-uniform levels (kIq4nlLevels);                    x = d * level[q]
//   Q2_K (256 values, 84 bytes): u8 scales[16] | u8 qs[64] | fp16 d | fp16 dmin
//        16 sub-blocks of 16; scales[s] holds the scale (low nibble) and min
//        (high nibble); element k = 128h + 32r + l is bits 2r..2r+1 of qs[32h + l];
//        x = d * sc * q - dmin * m.
//   Q3_K (256 values, 110 bytes): u8 hmask[32] | u8 qs[64] | u8 scales[12] | fp16 d
//        16 sub-blocks of 16 with 6-bit scales stored + 32 (unpack_q3k_scales);
//        low 2 bits of q as in Q2_K, its third bit is bit 4h + r of hmask[l];
//        x = d * (sc - 32) * (q - 4).
//   Q4_K (256 values, 144 bytes): fp16 d | fp16 dmin | u8 scales[12] | u8 qs[128]
//        8 sub-blocks of 32, each with a 6-bit scale and 6-bit min packed in `scales`
//        (see unpack_q4k_scales); x = d * sc * q - dmin * m.
//   Q5_K (256 values, 176 bytes): fp16 d | fp16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]
//        Q4_K's scales and nibbles, and bit s of qh[l] is the fifth bit of
//        element 32s + l; x = d * sc * q - dmin * m.
//   Q6_K (256 values, 210 bytes): u8 ql[128] | u8 qh[64] | int8 scales[16] | fp16 d
//        16 sub-blocks of 16; q = low 4 bits from ql | 2 high bits from qh, x = d * sc * (q - 32).
//   IQ4_XS (256 values, 136 bytes): fp16 d | u16 scales_h | u8 scales_l[4] | u8 qs[128]
//        8 sub-blocks of 32, each with a 6-bit scale stored + 32 (low nibble in
//        scales_l, 2 high bits in scales_h) and IQ4_NL's levels: x = d * (sc - 32) * level[q].
// Quantizers follow ggml's reference (`quantize_row_*_ref`) arithmetic step by
// step, in the same float operation order, so they produce the same bytes.
#include "model/gguf_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace cleave::gguf {

namespace {

constexpr int kQK = 32;     // block of Q8_0 / Q4_0
constexpr int kQK_K = 256;  // super-block of the K quants
constexpr float kGroupMaxEps = 1e-15f;

constexpr size_t kQ8_0Bytes = 34;
constexpr size_t kQ4_0Bytes = 18;
constexpr size_t kQ4_1Bytes = 20;
constexpr size_t kQ5_0Bytes = 22;
constexpr size_t kQ5_1Bytes = 24;
constexpr size_t kIQ4_NLBytes = 18;
constexpr size_t kQ2_KBytes = 84;
constexpr size_t kQ3_KBytes = 110;
constexpr size_t kQ4_KBytes = 144;
constexpr size_t kQ5_KBytes = 176;
constexpr size_t kQ6_KBytes = 210;
constexpr size_t kIQ4_XSBytes = 136;

// The 16 levels of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl), denser near zero
// where most weights are.
constexpr int8_t kIq4nlLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

inline void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Branch-free half -> float (the FP16 library's method, as ggml uses): normals
// are rebiased by a multiplication, subnormals built with a magic bias; a select
// picks one, so loops over it vectorize.
inline float half_to_float(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const float normalized = bits_float((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float denormalized = bits_float((two_w >> 17) | (126u << 23)) - 0.5f;
  // Mask select rather than ?: so GCC vectorizes loops over this.
  const uint32_t is_subnormal = 0u - static_cast<uint32_t>(two_w < (1u << 27));
  const uint32_t magnitude =
      (float_bits(denormalized) & is_subnormal) | (float_bits(normalized) & ~is_subnormal);
  return bits_float(sign | magnitude);
}

// float -> half, round to nearest even, overflow to infinity, NaN to quiet NaN.
inline uint16_t float_to_half(float f) {
  float base = (std::fabs(f) * 0x1.0p+112f) * 0x1.0p-110f;
  const uint32_t w = float_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = bits_float((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = float_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

inline float bf16_value(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

// Round to nearest, ties to even, for |x| < 2^22 (ggml's nearest_int).
inline int nearest_int(float x) {
  const float biased = x + 12582912.f;
  int32_t i;
  std::memcpy(&i, &biased, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// ---------------------------------------------------------------- dequantize

void dequantize_f16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(load_u16(src + 2 * i));
}

void dequantize_bf16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_value(load_u16(src + 2 * i));
}

void dequantize_q8_0(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kQ8_0Bytes;
    const float d = half_to_float(load_u16(block));
    const auto* qs = reinterpret_cast<const int8_t*>(block + 2);
    float* y = dst + b * kQK;
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(qs[j]) * d;
  }
}

void dequantize_q4_0(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kQ4_0Bytes;
    const float d = half_to_float(load_u16(block));
    const uint8_t* qs = block + 2;
    float* y = dst + b * kQK;
    for (int j = 0; j < kQK / 2; ++j) y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    for (int j = 0; j < kQK / 2; ++j) y[j + kQK / 2] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

void dequantize_q4_1(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kQ4_1Bytes;
    const float d = half_to_float(load_u16(block));
    const float m = half_to_float(load_u16(block + 2));
    const uint8_t* qs = block + 4;
    float* y = dst + b * kQK;
    for (int j = 0; j < kQK / 2; ++j) y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    for (int j = 0; j < kQK / 2; ++j) y[j + kQK / 2] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// Q5_0 and Q5_1: 32 values d * q + offset from 5-bit codes q, nibbles from qs
// and fifth bits from qh (bit j of the u32, so bit j % 8 of its byte j / 8).
// Walked byte by byte with constant shifts, each half in its own loop, so
// that the loops vectorize.
inline void five_bit_values(const uint8_t* qs, const uint8_t* qh, float d, float offset,
                            float* __restrict y) {
  for (int byte = 0; byte < 2; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      const int j = 8 * byte + bit;
      const int q = (qs[j] & 0x0F) | (((qh[byte] >> bit) & 1) << 4);
      y[j] = static_cast<float>(q) * d + offset;
    }
  }
  for (int byte = 0; byte < 2; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      const int j = 8 * byte + bit;
      const int q = (qs[j] >> 4) | (((qh[byte + 2] >> bit) & 1) << 4);
      y[j + kQK / 2] = static_cast<float>(q) * d + offset;
    }
  }
}

void dequantize_q5_0(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kQ5_0Bytes;
    const float d = half_to_float(load_u16(block));
    // d * q - 16 d: both products are exact in float (11 + 5 bits), and so is
    // their difference, ggml's d * (q - 16).
    five_bit_values(block + 6, block + 2, d, -16 * d, dst + b * kQK);
  }
}

void dequantize_q5_1(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kQ5_1Bytes;
    five_bit_values(block + 8, block + 4, half_to_float(load_u16(block)),
                    half_to_float(load_u16(block + 2)), dst + b * kQK);
  }
}

// 32 values on IQ4_NL's levels: d * level of each nibble of qs[0..16).
inline void iq4_levels_to_float(const uint8_t* qs, float d, float* y) {
  for (int j = 0; j < kQK / 2; ++j) y[j] = d * static_cast<float>(kIq4nlLevels[qs[j] & 0x0F]);
  for (int j = 0; j < kQK / 2; ++j) y[j + kQK / 2] = d * static_cast<float>(kIq4nlLevels[qs[j] >> 4]);
}

void dequantize_iq4_nl(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kIQ4_NLBytes;
    iq4_levels_to_float(block + 2, half_to_float(load_u16(block)), dst + b * kQK);
  }
}

void dequantize_iq4_xs(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kIQ4_XSBytes;
    const float d = half_to_float(load_u16(block));
    const uint16_t scales_h = load_u16(block + 2);
    const uint8_t* scales_l = block + 4;
    const uint8_t* qs = block + 8;
    for (int s = 0; s < kQK_K / kQK; ++s) {
      const int sc =
          ((scales_l[s / 2] >> (4 * (s % 2))) & 0x0F) | (((scales_h >> (2 * s)) & 3) << 4);
      iq4_levels_to_float(qs + 16 * s, d * static_cast<float>(sc - 32), dst + b * kQK_K + kQK * s);
    }
  }
}

void dequantize_q2_k(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kQ2_KBytes;
    const uint8_t* scales = block;
    const float d = half_to_float(load_u16(block + 80));
    const float dmin = half_to_float(load_u16(block + 82));
    float* y = dst + b * kQK_K;
    // Element k = 128h + 32r + l (half h, row r 0..3, lane l 0..31) is bits
    // 2r..2r+1 of qs[32h + l]; it is in sub-block k / 16 = 8h + 2r + l / 16.
    for (int h = 0; h < 2; ++h) {
      const uint8_t* q = block + 16 + 32 * h;
      for (int r = 0; r < 4; ++r) {
        for (int part = 0; part < 2; ++part) {
          const int s = 8 * h + 2 * r + part;
          const float dl = d * static_cast<float>(scales[s] & 0x0F);
          const float ml = dmin * static_cast<float>(scales[s] >> 4);
          float* ys = y + 16 * s;
          const uint8_t* qp = q + 16 * part;
          for (int l = 0; l < 16; ++l) ys[l] = dl * static_cast<float>((qp[l] >> (2 * r)) & 3) - ml;
        }
      }
    }
  }
}

// The 12 bytes hold 16 six-bit scales: the low nibble of scale s is the low
// (s < 8) or high (s >= 8) nibble of byte s % 8; its top 2 bits are bits
// 2(s/4)..2(s/4)+1 of byte 8 + s % 4. Returned as stored (0..63, offset by 32).
inline void unpack_q3k_scales(const uint8_t* q, int* sc) {
  for (int s = 0; s < 16; ++s) {
    const int low = (q[s % 8] >> (s < 8 ? 0 : 4)) & 0x0F;
    const int high = (q[8 + s % 4] >> (2 * (s / 4))) & 3;
    sc[s] = low | (high << 4);
  }
}

void dequantize_q3_k(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  int sc[16];
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kQ3_KBytes;
    const uint8_t* hmask = block;
    unpack_q3k_scales(block + 96, sc);
    const float d = half_to_float(load_u16(block + 108));
    float* y = dst + b * kQK_K;
    // Low 2 bits placed as in Q2_K; the third is bit 4h + r of hmask[l], and
    // a clear bit means q - 4 (codes -4..3).
    for (int h = 0; h < 2; ++h) {
      const uint8_t* q = block + 32 + 32 * h;
      for (int r = 0; r < 4; ++r) {
        const int bit = 4 * h + r;
        for (int part = 0; part < 2; ++part) {
          const int s = 8 * h + 2 * r + part;
          const float dl = d * static_cast<float>(sc[s] - 32);
          float* ys = y + 16 * s;
          const uint8_t* qp = q + 16 * part;
          const uint8_t* hp = hmask + 16 * part;
          for (int l = 0; l < 16; ++l) {
            const int code = ((qp[l] >> (2 * r)) & 3) - (((hp[l] >> bit) & 1) ? 0 : 4);
            ys[l] = dl * static_cast<float>(code);
          }
        }
      }
    }
  }
}

// The 12 bytes hold 8 six-bit scales and 8 six-bit mins: sub-blocks 0..3 use the
// low 6 bits of bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7 take their
// low 4 bits from bytes 8..11 (scale low nibble, min high nibble) and their top
// 2 bits from the top 2 bits of bytes 0..3 (scales) and 4..7 (mins).
inline void unpack_q4k_scales(const uint8_t* q, uint8_t* sc, uint8_t* m) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = q[j] & 63;
    m[j] = q[j + 4] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m[j] = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void dequantize_q4_k(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kQ4_KBytes;
    const float d = half_to_float(load_u16(block));
    const float dmin = half_to_float(load_u16(block + 2));
    uint8_t sc[8], m[8];
    unpack_q4k_scales(block + 4, sc, m);
    const uint8_t* qs = block + 16;
    float* y = dst + b * kQK_K;
    // 4 groups of 64 values: 32 low nibbles (sub-block 2g), then 32 high nibbles (2g+1).
    for (int g = 0; g < 4; ++g) {
      const float d1 = d * sc[2 * g], m1 = dmin * m[2 * g];
      const float d2 = d * sc[2 * g + 1], m2 = dmin * m[2 * g + 1];
      const uint8_t* q = qs + 32 * g;
      float* yg = y + 64 * g;
      for (int l = 0; l < 32; ++l) yg[l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) yg[32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_k(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kQ5_KBytes;
    const float d = half_to_float(load_u16(block));
    const float dmin = half_to_float(load_u16(block + 2));
    uint8_t sc[8], m[8];
    unpack_q4k_scales(block + 4, sc, m);
    const uint8_t* qh = block + 16;
    const uint8_t* qs = block + 48;
    float* y = dst + b * kQK_K;
    // As Q4_K: sub-block s takes the low (s even) or high (s odd) nibbles of
    // qs[32 (s/2) ..], and bit s of qh[l] as the fifth bit.
    for (int s = 0; s < 8; ++s) {
      const float ds = d * sc[s], ms = dmin * m[s];
      const uint8_t* q = qs + 32 * (s / 2);
      const int shift = 4 * (s % 2);
      for (int l = 0; l < 32; ++l) {
        const int code = ((q[l] >> shift) & 0x0F) | (((qh[l] >> s) & 1) << 4);
        y[32 * s + l] = ds * static_cast<float>(code) - ms;
      }
    }
  }
}

void dequantize_q6_k(const uint8_t* src, float* __restrict dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = src + b * kQ6_KBytes;
    const float d = half_to_float(load_u16(block + 208));
    const auto* scales = reinterpret_cast<const int8_t*>(block + 192);
    // Two halves of 128 values; in each, position l (0..31) of the four rows
    // l, l+32, l+64, l+96 shares ql[l], ql[l+32] and qh[l].
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = block + 64 * half;
      const uint8_t* qh = block + 128 + 32 * half;
      const int8_t* sc = scales + 8 * half;
      float* y = dst + b * kQK_K + 128 * half;
      for (int part = 0; part < 2; ++part) {  // l in [16*part, 16*part + 16) uses scale index part
        const float s0 = d * sc[part + 0], s1 = d * sc[part + 2];
        const float s2 = d * sc[part + 4], s3 = d * sc[part + 6];
        for (int l = 16 * part; l < 16 * part + 16; ++l) {
          const int q0 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
          const int q1 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
          const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          y[l] = s0 * static_cast<float>(q0);
          y[l + 32] = s1 * static_cast<float>(q1);
          y[l + 64] = s2 * static_cast<float>(q2);
          y[l + 96] = s3 * static_cast<float>(q3);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- quantize

void quantize_q8_0(const float* x, uint8_t* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, x += kQK) {
    uint8_t* block = dst + b * kQ8_0Bytes;
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(block, float_to_half(d));
    auto* qs = reinterpret_cast<int8_t*>(block + 2);
    for (int j = 0; j < kQK; ++j) qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

void quantize_q4_0(const float* x, uint8_t* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, x += kQK) {
    uint8_t* block = dst + b * kQ4_0Bytes;
    // The value of largest magnitude maps to -8 exactly, keeping its sign in d.
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(block, float_to_half(d));
    uint8_t* qs = block + 2;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kQK / 2] * id + 8.5f)));
      qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// ggml's make_qkx2_quants: asymmetric quantization of n values to 0..nmax with
// a scale and a min (x ~ scale * L - the_min), searching nstep+1 candidate
// scales for the least weighted error (absolute if use_mad, else squared).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, uint8_t{0});
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        std::copy(Laux, Laux + n, L);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

void quantize_q4_k(const float* x, uint8_t* dst, int64_t n_blocks) {
  uint8_t L[kQK_K];
  uint8_t Laux[32];
  float weights[32];
  float mins[kQK_K / 32];
  float scales[kQK_K / 32];
  for (int64_t b = 0; b < n_blocks; ++b, x += kQK_K) {
    uint8_t* block = dst + b * kQ4_KBytes;
    uint8_t* packed = block + 4;
    uint8_t* qs = block + 16;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < kQK_K / 32; ++j) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
      scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f,
                                   0.1f, 20, false);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::memset(packed, 0, 12);
    for (int j = 0; j < kQK_K / 32; ++j) {
      // ggml stores nearest_int in a uint8_t before clamping to 63.
      const uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
      const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
      if (j < 4) {
        packed[j] = ls;
        packed[j + 4] = lm;
      } else {
        packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
        packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
      }
    }
    const uint16_t d16 = float_to_half(max_scale / 63.f);
    const uint16_t dmin16 = float_to_half(max_min / 63.f);
    store_u16(block, d16);
    store_u16(block + 2, dmin16);

    // Requantize against the scales as they were stored.
    uint8_t sc[8], m[8];
    unpack_q4k_scales(packed, sc, m);
    for (int j = 0; j < kQK_K / 32; ++j) {
      const float d = half_to_float(d16) * sc[j];
      if (d == 0.0f) continue;
      const float dm = half_to_float(dmin16) * m[j];
      for (int ii = 0; ii < 32; ++ii) {
        const int l = nearest_int((x[32 * j + ii] + dm) / d);
        L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(15, l)));
      }
    }
    for (int g = 0; g < 4; ++g) {
      for (int l = 0; l < 32; ++l) {
        qs[32 * g + l] = static_cast<uint8_t>(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
      }
    }
  }
}

// ggml's make_qx_quants with rmse_type 1 and no importance weights (w = x^2):
// symmetric quantization to -nmax..nmax-1, refining the scale over 19 candidates.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t{0});
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void quantize_q6_k(const float* x, uint8_t* dst, int64_t n_blocks) {
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  for (int64_t b = 0; b < n_blocks; ++b, x += kQK_K) {
    uint8_t* block = dst + b * kQ6_KBytes;
    uint8_t* ql = block;
    uint8_t* qh = block + 128;
    auto* block_scales = reinterpret_cast<int8_t*>(block + 192);
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < kQK_K / 16; ++ib) {
      const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      if (std::fabs(scale) > max_abs_scale) {
        max_abs_scale = std::fabs(scale);
        max_scale = scale;
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(block, 0, kQ6_KBytes);
      continue;
    }
    const float iscale = -128.f / max_scale;
    const uint16_t d16 = float_to_half(1 / iscale);
    store_u16(block + 208, d16);
    for (int ib = 0; ib < kQK_K / 16; ++ib) {
      block_scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = half_to_float(d16) * block_scales[j];
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        int l = nearest_int(x[16 * j + ii] / d);
        l = std::max(-32, std::min(31, l));
        L[16 * j + ii] = static_cast<int8_t>(l + 32);
      }
    }
    for (int half = 0; half < 2; ++half) {
      const int8_t* Lh = L + 128 * half;
      uint8_t* qlh = ql + 64 * half;
      uint8_t* qhh = qh + 32 * half;
      for (int l = 0; l < 32; ++l) {
        const uint8_t q0 = Lh[l], q1 = Lh[l + 32], q2 = Lh[l + 64], q3 = Lh[l + 96];
        qlh[l] = static_cast<uint8_t>((q0 & 0xF) | ((q2 & 0xF) << 4));
        qlh[l + 32] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
        qhh[l] = static_cast<uint8_t>((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) |
                                      ((q3 >> 4) << 6));
      }
    }
  }
}

int64_t checked_blocks(TensorType type, int64_t n, const char* op) {
  const int64_t bs = block_size(type);
  if (n < 0 || n % bs != 0) {
    throw std::runtime_error(std::string(op) + ": " + std::to_string(n) + " elements of " +
                             type_name(type) + " is not a multiple of its block size " +
                             std::to_string(bs));
  }
  return n / bs;
}

}  // namespace

float fp16_to_float(uint16_t h) { return half_to_float(h); }
uint16_t float_to_fp16(float f) { return float_to_half(f); }
float bf16_to_float(uint16_t h) { return bf16_value(h); }

uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

bool can_quantize(TensorType type) {
  switch (type) {
    case TensorType::F32: case TensorType::F16: case TensorType::BF16:
    case TensorType::Q8_0: case TensorType::Q4_0: case TensorType::Q4_K:
    case TensorType::Q6_K:
      return true;
    default:
      return false;
  }
}

void dequantize(TensorType type, const void* src, float* dst, int64_t n) {
  if (!is_supported(type)) {
    throw std::runtime_error(std::string("dequantize: tensor type ") + type_name(type) +
                             " is not supported (supported: " + supported_type_names() +
                             "); convert the model to one of these");
  }
  const int64_t n_blocks = checked_blocks(type, n, "dequantize");
  // A tensor with a zero dimension: nothing to convert, and its buffers may
  // be null, which memcpy must not be given (gguf_fuzz finding).
  if (n == 0) return;
  const auto* bytes = static_cast<const uint8_t*>(src);
  switch (type) {
    case TensorType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
    case TensorType::F16: dequantize_f16(bytes, dst, n); break;
    case TensorType::BF16: dequantize_bf16(bytes, dst, n); break;
    case TensorType::Q8_0: dequantize_q8_0(bytes, dst, n_blocks); break;
    case TensorType::Q4_0: dequantize_q4_0(bytes, dst, n_blocks); break;
    case TensorType::Q4_1: dequantize_q4_1(bytes, dst, n_blocks); break;
    case TensorType::Q5_0: dequantize_q5_0(bytes, dst, n_blocks); break;
    case TensorType::Q5_1: dequantize_q5_1(bytes, dst, n_blocks); break;
    case TensorType::Q2_K: dequantize_q2_k(bytes, dst, n_blocks); break;
    case TensorType::Q3_K: dequantize_q3_k(bytes, dst, n_blocks); break;
    case TensorType::Q4_K: dequantize_q4_k(bytes, dst, n_blocks); break;
    case TensorType::Q5_K: dequantize_q5_k(bytes, dst, n_blocks); break;
    case TensorType::Q6_K: dequantize_q6_k(bytes, dst, n_blocks); break;
    case TensorType::IQ4_NL: dequantize_iq4_nl(bytes, dst, n_blocks); break;
    case TensorType::IQ4_XS: dequantize_iq4_xs(bytes, dst, n_blocks); break;
    default:
      throw std::logic_error(std::string("dequantize: ") + type_name(type) +
                             " is marked supported but has no conversion");
  }
}

void quantize(TensorType type, const float* src, void* dst, int64_t n) {
  if (!can_quantize(type)) {
    throw std::runtime_error(std::string("quantize: cleave does not write ") + type_name(type) +
                             " (it writes F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)");
  }
  const int64_t n_blocks = checked_blocks(type, n, "quantize");
  auto* bytes = static_cast<uint8_t*>(dst);
  switch (type) {
    case TensorType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
    case TensorType::F16:
      for (int64_t i = 0; i < n; ++i) store_u16(bytes + 2 * i, float_to_half(src[i]));
      break;
    case TensorType::BF16:
      for (int64_t i = 0; i < n; ++i) store_u16(bytes + 2 * i, float_to_bf16(src[i]));
      break;
    case TensorType::Q8_0: quantize_q8_0(src, bytes, n_blocks); break;
    case TensorType::Q4_0: quantize_q4_0(src, bytes, n_blocks); break;
    case TensorType::Q4_K: quantize_q4_k(src, bytes, n_blocks); break;
    case TensorType::Q6_K: quantize_q6_k(src, bytes, n_blocks); break;
    default: break;
  }
}

}  // namespace cleave::gguf
