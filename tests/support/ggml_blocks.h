// ggml blocks built by tests: random codes and scales packed into the byte
// layouts of ggml-common.h, and each element's value from its per-element
// formula, written apart from model/gguf_quant.cpp (element by element, where
// the reader walks blocks in its own order) so that a test compares two
// readings of the layouts. Header-only and free of LibTorch: the format tests
// and the model tests both use it.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/gguf.h"

namespace cleave::test {

// IEEE half by its definition: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m.
inline double half_by_definition(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 31, mantissa = h & 1023;
  const double s = sign ? -1.0 : 1.0;
  if (exponent == 31) return mantissa ? std::nan("") : s * INFINITY;
  if (exponent == 0) return s * std::ldexp(mantissa, -24);
  return s * std::ldexp(1024 + mantissa, exponent - 25);
}

// The largest positive finite half not above `target` (positive halves grow
// with their bit pattern).
inline uint16_t half_at_most(double target) {
  uint16_t lo = 0, hi = 0x7BFF;
  while (lo < hi) {
    const uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (half_by_definition(mid) <= target) {
      lo = mid;
    } else {
      hi = static_cast<uint16_t>(mid - 1);
    }
  }
  return lo;
}

// ggml's kvalues_iq4nl: the 16 levels of IQ4_NL and IQ4_XS.
constexpr int kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                1,    13,   25,  38,  53,  69,  89,  113};

// Elements and bytes of one block, as ggml-common.h declares the structs.
struct GgmlBlockShape {
  gguf::TensorType type;
  int64_t values;
  int64_t bytes;
};
inline const std::vector<GgmlBlockShape>& ggml_block_shapes() {
  using gguf::TensorType;
  static const std::vector<GgmlBlockShape> shapes = {
      {TensorType::F32, 1, 4},        {TensorType::F16, 1, 2},
      {TensorType::BF16, 1, 2},       {TensorType::Q4_0, 32, 2 + 16},
      {TensorType::Q4_1, 32, 2 + 2 + 16},  {TensorType::Q5_0, 32, 2 + 4 + 16},
      {TensorType::Q5_1, 32, 2 + 2 + 4 + 16}, {TensorType::Q8_0, 32, 2 + 32},
      {TensorType::Q8_1, 32, 2 + 2 + 32},  {TensorType::Q2_K, 256, 16 + 64 + 2 + 2},
      {TensorType::Q3_K, 256, 32 + 64 + 12 + 2}, {TensorType::Q4_K, 256, 2 + 2 + 12 + 128},
      {TensorType::Q5_K, 256, 2 + 2 + 12 + 32 + 128}, {TensorType::Q6_K, 256, 128 + 64 + 16 + 2},
      {TensorType::Q8_K, 256, 4 + 256 + 32}, {TensorType::IQ2_XXS, 256, 2 + 64},
      {TensorType::IQ2_XS, 256, 2 + 64 + 8}, {TensorType::IQ3_XXS, 256, 2 + 96},
      {TensorType::IQ1_S, 256, 2 + 32 + 16}, {TensorType::IQ4_NL, 32, 2 + 16},
      {TensorType::IQ3_S, 256, 2 + 64 + 8 + 32 + 4}, {TensorType::IQ2_S, 256, 2 + 64 + 8 + 8},
      {TensorType::IQ4_XS, 256, 2 + 2 + 4 + 128}, {TensorType::IQ1_M, 256, 32 + 16 + 8},
      {TensorType::TQ1_0, 256, 48 + 4 + 2}, {TensorType::TQ2_0, 256, 64 + 2},
      {TensorType::MXFP4, 32, 1 + 16},
  };
  return shapes;
}

inline const GgmlBlockShape& ggml_block_shape(gguf::TensorType type) {
  for (const auto& s : ggml_block_shapes()) {
    if (s.type == type) return s;
  }
  throw std::invalid_argument("no test block shape for type " +
                              std::to_string(static_cast<uint32_t>(type)));
}

// The block types a test can build, all that cleave reads.
inline std::vector<gguf::TensorType> ggml_buildable_types() {
  using gguf::TensorType;
  return {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0,
          TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
          TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K,
          TensorType::Q6_K, TensorType::IQ4_NL, TensorType::IQ4_XS};
}

struct GgmlBlocks {
  std::vector<uint8_t> bytes;
  std::vector<double> values;     // each element by its formula, exactly
  // Sum of the magnitudes of the formula's terms: a float reader rounds
  // relative to this, not to the (possibly cancelled) value.
  std::vector<double> magnitude;
};

namespace ggml_blocks_detail {

inline void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

class Builder {
 public:
  Builder(uint32_t seed, double magnitude) : rng_(seed), magnitude_(magnitude) {}

  int code(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  // A positive half in [target/2, target], or negative too when `signed_`.
  uint16_t half(double target, bool signed_ = false) {
    const double v = std::uniform_real_distribution<double>(0.5, 1.0)(rng_) * target;
    const uint16_t h = half_at_most(v);
    return static_cast<uint16_t>(h | ((signed_ && code(0, 1)) ? 0x8000 : 0));
  }
  double magnitude() const { return magnitude_; }

 private:
  std::mt19937 rng_;
  double magnitude_;
};

// Q4_0/Q4_1/IQ4_NL/IQ4_XS groups of 32: element j < 16 in the low nibble of
// qs[j], element 16 + j in its high nibble.
inline void put_nibble_32(uint8_t* qs, int j, int q) {
  qs[j % 16] = static_cast<uint8_t>(qs[j % 16] | (q << (j < 16 ? 0 : 4)));
}

// One block of `type` at `out`; its values appended to `v`, `mag`.
inline void build_block(gguf::TensorType type, Builder& rng, uint8_t* out, std::vector<double>& v,
                        std::vector<double>& mag) {
  using gguf::TensorType;
  const double target = rng.magnitude();
  auto add = [&](double value, double magnitude) {
    v.push_back(value);
    mag.push_back(magnitude);
  };
  switch (type) {
    case TensorType::F32: {
      const float x = static_cast<float>(rng.code(-1000, 1000) * target / 1000);
      std::memcpy(out, &x, 4);
      add(x, std::fabs(x));
      return;
    }
    case TensorType::F16: {
      const uint16_t h = rng.half(target, true);
      put16(out, h);
      add(half_by_definition(h), std::fabs(half_by_definition(h)));
      return;
    }
    case TensorType::BF16: {  // the top half of a float's bits
      const float x = static_cast<float>(rng.code(-1000, 1000) * target / 1000);
      uint32_t bits;
      std::memcpy(&bits, &x, 4);
      bits &= 0xFFFF0000u;
      float truncated;
      std::memcpy(&truncated, &bits, 4);
      put16(out, static_cast<uint16_t>(bits >> 16));
      add(truncated, std::fabs(truncated));
      return;
    }
    case TensorType::Q8_0: {  // d | qs[32] int8; x = d q
      const uint16_t d = rng.half(target / 128);
      put16(out, d);
      for (int j = 0; j < 32; ++j) {
        const int q = rng.code(-128, 127);
        out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
        add(half_by_definition(d) * q, std::fabs(half_by_definition(d) * q));
      }
      return;
    }
    case TensorType::Q4_0:     // d | qs[16]; x = d (q - 8)
    case TensorType::IQ4_NL: { // d | qs[16]; x = d level[q]
      const bool nl = type == TensorType::IQ4_NL;
      const uint16_t d = rng.half(target / (nl ? 127 : 8), true);
      put16(out, d);
      for (int j = 0; j < 32; ++j) {
        const int q = rng.code(0, 15);
        put_nibble_32(out + 2, j, q);
        const double x = half_by_definition(d) * (nl ? kIq4Levels[q] : q - 8);
        add(x, std::fabs(x));
      }
      return;
    }
    case TensorType::Q4_1: {  // d | m | qs[16]; x = d q + m
      const uint16_t d = rng.half(target / 16), m = rng.half(target / 2, true);
      put16(out, d);
      put16(out + 2, m);
      for (int j = 0; j < 32; ++j) {
        const int q = rng.code(0, 15);
        put_nibble_32(out + 4, j, q);
        const double dq = half_by_definition(d) * q, mv = half_by_definition(m);
        add(dq + mv, std::fabs(dq) + std::fabs(mv));
      }
      return;
    }
    case TensorType::Q5_0:    // d | qh u32 | qs[16]; x = d (q - 16)
    case TensorType::Q5_1: {  // d | m | qh u32 | qs[16]; x = d q + m
      const bool with_min = type == TensorType::Q5_1;
      const uint16_t d = rng.half(target / 16, !with_min);
      const uint16_t m = with_min ? rng.half(target / 2, true) : 0;
      put16(out, d);
      if (with_min) put16(out + 2, m);
      uint8_t* qh = out + (with_min ? 4 : 2);
      uint8_t* qs = qh + 4;
      for (int j = 0; j < 32; ++j) {
        const int q = rng.code(0, 31);
        put_nibble_32(qs, j, q & 15);
        // Bit j of the little-endian u32.
        qh[j / 8] = static_cast<uint8_t>(qh[j / 8] | ((q >> 4) << (j % 8)));
        const double dq = half_by_definition(d) * (with_min ? q : q - 16);
        const double mv = half_by_definition(m);
        add(dq + mv, std::fabs(dq) + std::fabs(mv));
      }
      return;
    }
    case TensorType::Q2_K: {  // scales[16] | qs[64] | d | dmin; x = d sc q - dmin m
      const uint16_t d = rng.half(target / 45), dmin = rng.half(target / 15);
      put16(out + 80, d);
      put16(out + 82, dmin);
      int sc[16], m[16];
      for (int s = 0; s < 16; ++s) {
        sc[s] = rng.code(0, 15);
        m[s] = rng.code(0, 15);
        out[s] = static_cast<uint8_t>(sc[s] | (m[s] << 4));
      }
      for (int k = 0; k < 256; ++k) {
        const int q = rng.code(0, 3), h = k / 128, r = (k % 128) / 32, l = k % 32;
        out[16 + 32 * h + l] = static_cast<uint8_t>(out[16 + 32 * h + l] | (q << (2 * r)));
        const double a = half_by_definition(d) * sc[k / 16] * q;
        const double b = half_by_definition(dmin) * m[k / 16];
        add(a - b, std::fabs(a) + std::fabs(b));
      }
      return;
    }
    case TensorType::Q3_K: {  // hmask[32] | qs[64] | scales[12] | d; x = d (sc - 32) (q - 4)
      const uint16_t d = rng.half(target / 128, true);
      put16(out + 108, d);
      uint8_t* hmask = out;
      uint8_t* qs = out + 32;
      uint8_t* scales = out + 96;
      int sc[16];
      for (int s = 0; s < 16; ++s) {
        sc[s] = rng.code(0, 63);
        scales[s % 8] = static_cast<uint8_t>(scales[s % 8] | ((sc[s] & 15) << (s < 8 ? 0 : 4)));
        uint8_t& top = scales[8 + s % 4];
        top = static_cast<uint8_t>(top | ((sc[s] >> 4) << (2 * (s / 4))));
      }
      for (int k = 0; k < 256; ++k) {
        const int q = rng.code(0, 7), h = k / 128, r = (k % 128) / 32, l = k % 32;
        qs[32 * h + l] = static_cast<uint8_t>(qs[32 * h + l] | ((q & 3) << (2 * r)));
        hmask[l] = static_cast<uint8_t>(hmask[l] | ((q >> 2) << (4 * h + r)));
        const double x = half_by_definition(d) * (sc[k / 16] - 32) * (q - 4);
        add(x, std::fabs(x));
      }
      return;
    }
    case TensorType::Q4_K:    // d | dmin | scales[12] | qs[128]
    case TensorType::Q5_K: {  // d | dmin | scales[12] | qh[32] | qs[128]; x = d sc q - dmin m
      const bool five = type == TensorType::Q5_K;
      const uint16_t d = rng.half(target / (63.0 * (five ? 31 : 15))), dmin = rng.half(target / 63);
      put16(out, d);
      put16(out + 2, dmin);
      uint8_t* scales = out + 4;
      uint8_t* qh = out + 16;
      uint8_t* qs = out + (five ? 48 : 16);
      // Sub-blocks 0..3: 6 bits in bytes 0..3 (scale) and 4..7 (min); 4..7: low
      // 4 bits in byte 4 + s (scale low nibble, min high), top 2 bits in the top
      // 2 bits of bytes s - 4 (scale) and s (min).
      int sc[8], m[8];
      for (int s = 0; s < 8; ++s) {
        sc[s] = rng.code(0, 63);
        m[s] = rng.code(0, 63);
        if (s < 4) {
          scales[s] = static_cast<uint8_t>(scales[s] | sc[s]);
          scales[s + 4] = static_cast<uint8_t>(scales[s + 4] | m[s]);
        } else {
          scales[s + 4] = static_cast<uint8_t>((sc[s] & 15) | ((m[s] & 15) << 4));
          scales[s - 4] = static_cast<uint8_t>(scales[s - 4] | ((sc[s] >> 4) << 6));
          scales[s] = static_cast<uint8_t>(scales[s] | ((m[s] >> 4) << 6));
        }
      }
      // Sub-block s = k / 32 in the low (s even) or high (s odd) nibbles of
      // qs[32 (s / 2) + k % 32]; Q5_K's fifth bit is bit s of qh[k % 32].
      for (int k = 0; k < 256; ++k) {
        const int s = k / 32, l = k % 32;
        const int q = rng.code(0, five ? 31 : 15);
        uint8_t& byte = qs[32 * (s / 2) + l];
        byte = static_cast<uint8_t>(byte | ((q & 15) << (4 * (s % 2))));
        if (five) qh[l] = static_cast<uint8_t>(qh[l] | ((q >> 4) << s));
        const double a = half_by_definition(d) * sc[s] * q, b = half_by_definition(dmin) * m[s];
        add(a - b, std::fabs(a) + std::fabs(b));
      }
      return;
    }
    case TensorType::Q6_K: {  // ql[128] | qh[64] | scales[16] int8 | d; x = d sc (q - 32)
      const uint16_t d = rng.half(target / (128.0 * 32));
      put16(out + 208, d);
      int sc[16];
      for (int s = 0; s < 16; ++s) {
        sc[s] = rng.code(-128, 127);
        out[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(sc[s]));
      }
      // k = 128h + 32r + l: low 4 bits in ql[64h + l + 32 (r & 1)] (low nibble
      // for r < 2), high 2 bits as bits 2r..2r+1 of qh[32h + l].
      for (int k = 0; k < 256; ++k) {
        const int q = rng.code(0, 63), h = k / 128, r = (k % 128) / 32, l = k % 32;
        uint8_t& ql = out[64 * h + l + 32 * (r & 1)];
        ql = static_cast<uint8_t>(ql | ((q & 15) << (r >= 2 ? 4 : 0)));
        out[128 + 32 * h + l] = static_cast<uint8_t>(out[128 + 32 * h + l] | ((q >> 4) << (2 * r)));
        const double x = half_by_definition(d) * sc[k / 16] * (q - 32);
        add(x, std::fabs(x));
      }
      return;
    }
    case TensorType::IQ4_XS: {
      // d | scales_h u16 | scales_l[4] | qs[128]; x = d (sc - 32) level[q]
      const uint16_t d = rng.half(target / (32.0 * 127), true);
      put16(out, d);
      uint16_t scales_h = 0;
      int sc[8];
      for (int s = 0; s < 8; ++s) {
        sc[s] = rng.code(0, 63);
        out[4 + s / 2] = static_cast<uint8_t>(out[4 + s / 2] | ((sc[s] & 15) << (4 * (s % 2))));
        scales_h = static_cast<uint16_t>(scales_h | ((sc[s] >> 4) << (2 * s)));
      }
      put16(out + 2, scales_h);
      for (int k = 0; k < 256; ++k) {
        const int q = rng.code(0, 15);
        put_nibble_32(out + 8 + 16 * (k / 32), k % 32, q);
        const double x = half_by_definition(d) * (sc[k / 32] - 32) * kIq4Levels[q];
        add(x, std::fabs(x));
      }
      return;
    }
    default:
      throw std::invalid_argument(std::string("the test cannot build ") + gguf::type_name(type));
  }
}

}  // namespace ggml_blocks_detail

// n values of `type` (n a multiple of its block) from random codes, seeded,
// with values up to about `magnitude`.
inline GgmlBlocks random_ggml_blocks(gguf::TensorType type, int64_t n, uint32_t seed,
                                     double magnitude = 1.0) {
  const GgmlBlockShape& shape = ggml_block_shape(type);
  if (n % shape.values != 0) throw std::invalid_argument("not a whole number of blocks");
  GgmlBlocks blocks;
  blocks.bytes.assign(static_cast<size_t>(n / shape.values * shape.bytes), 0);
  ggml_blocks_detail::Builder rng(seed, magnitude);
  for (int64_t b = 0; b < n / shape.values; ++b) {
    ggml_blocks_detail::build_block(type, rng, blocks.bytes.data() + b * shape.bytes, blocks.values,
                                    blocks.magnitude);
  }
  return blocks;
}

}  // namespace cleave::test
