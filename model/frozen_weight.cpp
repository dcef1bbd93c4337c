#include "model/frozen_weight.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "model/cpu_kernels.h"
#include "model/gguf_quant.h"

namespace cleave {
namespace {

constexpr int64_t kQ4Block = 32;

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// float -> bfloat16 bits, rounding to nearest even (finite inputs: weights).
CLEAVE_ALWAYS_INLINE uint16_t to_bf16_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// Rows straight to bf16, one body compiled for AVX2 and generic x86-64
// (model/cpu_kernels.h): these run for every frozen matmul in both passes.
// int8: out[i] = bf16(scale * q[i]).
CLEAVE_ALWAYS_INLINE void int8_row_to_bf16_body(const int8_t* q, float scale, int64_t n,
                                                uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = to_bf16_bits(scale * static_cast<float>(q[i]));
}
CLEAVE_TARGET_AVX2 void int8_row_to_bf16_avx2(const int8_t* q, float scale, int64_t n, uint16_t* out) {
  int8_row_to_bf16_body(q, scale, n, out);
}
void int8_row_to_bf16_generic(const int8_t* q, float scale, int64_t n, uint16_t* out) {
  int8_row_to_bf16_body(q, scale, n, out);
}

// q4: the full 32-wide blocks of a row (low nibble first), codes - 8 times
// the block's scale.
CLEAVE_ALWAYS_INLINE void q4_blocks_to_bf16_body(const uint8_t* q, const float* scales,
                                                 int64_t blocks, uint16_t* out) {
  for (int64_t b = 0; b < blocks; ++b) {
    const float scale = scales[b];
    const uint8_t* qb = q + b * (kQ4Block / 2);
    uint16_t* ob = out + b * kQ4Block;
    for (int64_t i = 0; i < kQ4Block / 2; ++i) {
      ob[2 * i] = to_bf16_bits(scale * static_cast<float>((qb[i] & 0x0F) - 8));
      ob[2 * i + 1] = to_bf16_bits(scale * static_cast<float>((qb[i] >> 4) - 8));
    }
  }
}
CLEAVE_TARGET_AVX2 void q4_blocks_to_bf16_avx2(const uint8_t* q, const float* scales, int64_t blocks,
                                               uint16_t* out) {
  q4_blocks_to_bf16_body(q, scales, blocks, out);
}
void q4_blocks_to_bf16_generic(const uint8_t* q, const float* scales, int64_t blocks, uint16_t* out) {
  q4_blocks_to_bf16_body(q, scales, blocks, out);
}

// Dequantization with tensor ops, for any device and dtype (the row loops
// below serve CPU float32). int8: values [R, in] int8, scales [R];
// q4: values [R, padded/2] uint8 (low nibble first), scales [R, padded/32].
// -> [R, in] in the scales' dtype.
at::Tensor dequantize_codes(FrozenWeight::Storage storage, const at::Tensor& values,
                            const at::Tensor& scales, int64_t in) {
  const at::ScalarType dtype = scales.scalar_type();
  if (storage == FrozenWeight::Storage::int8_rows) {
    return values.to(dtype) * scales.unsqueeze(1);  // int8 codes are exact in bf16/fp16
  }
  const int64_t rows = values.size(0), padded = values.size(1) * 2;
  at::Tensor low = values.bitwise_and(0x0F);
  at::Tensor high = values.bitwise_right_shift(4);
  at::Tensor codes = at::stack({low, high}, 2).view({rows, padded / kQ4Block, kQ4Block});
  at::Tensor w = (codes.to(dtype) - 8) * scales.unsqueeze(2);  // [R, blocks, 32]
  w = w.view({rows, padded});
  return padded == in ? w : w.narrow(1, 0, in).contiguous();
}

}  // namespace

BaseQuant parse_base_quant(const std::string& name) {
  if (name == "native") return BaseQuant::native;
  if (name == "none") return BaseQuant::none;
  if (name == "int8") return BaseQuant::int8;
  if (name == "q4") return BaseQuant::q4;
  throw std::invalid_argument("unknown base quantization '" + name +
                              "': expected one of native, none, int8, q4");
}

const char* to_string(BaseQuant quant) {
  switch (quant) {
    case BaseQuant::native: return "native";
    case BaseQuant::none: return "none";
    case BaseQuant::int8: return "int8";
    case BaseQuant::q4: return "q4";
  }
  return "?";
}

FrozenWeight FrozenWeight::from_float(const at::Tensor& w, BaseQuant quant) {
  TORCH_CHECK(w.dim() == 2, "frozen weight must be 2-D [out, in], got ", w.sizes());
  FrozenWeight fw;
  fw.out_ = w.size(0);
  fw.in_ = w.size(1);
  const at::Tensor src = w.to(at::kFloat).contiguous();
  if (quant == BaseQuant::native || quant == BaseQuant::none) {
    fw.storage_ = Storage::f32;
    fw.values_ = src;
    return fw;
  }
  // Both formats are written row by row straight from `src`: no float
  // temporaries the size of the matrix (a 32000 x 768 output head would
  // otherwise briefly cost several copies of itself while loading).
  const int64_t in = fw.in_;
  const float* x = src.data_ptr<float>();
  if (quant == BaseQuant::int8) {
    // Per output row: scale = max(|x|) / 127 (at least 1e-12), q = round(x / scale),
    // the rule the int8 products round activations by.
    fw.storage_ = Storage::int8_rows;
    Int8Rows rows = quantize_rows(src);
    fw.values_ = std::move(rows.codes);   // [out, in]
    fw.scales_ = std::move(rows.scales);  // [out]
    return fw;
  }
  // q4: symmetric blocks of 32 along the input dimension, like ggml's Q4_0:
  // d = max / -8 where max is the signed value of largest magnitude, q = x/d + 8 in [0, 15].
  // A row whose length is not a multiple of 32 ends in a zero-padded block.
  fw.storage_ = Storage::q4_blocks;
  const int64_t padded = round_up(in, kQ4Block);
  const int64_t n_blocks = padded / kQ4Block;
  fw.values_ = at::empty({fw.out_, padded / 2}, at::kByte);
  fw.scales_ = at::empty({fw.out_, n_blocks}, at::kFloat);
  uint8_t* q = fw.values_.data_ptr<uint8_t>();
  float* d = fw.scales_.data_ptr<float>();
  at::parallel_for(0, fw.out_ * n_blocks, 256, [&](int64_t begin, int64_t end) {
    float padded_block[kQ4Block];
    for (int64_t b = begin; b < end; ++b) {
      const int64_t row = b / n_blocks, first = (b % n_blocks) * kQ4Block;
      const int64_t have = std::min(kQ4Block, in - first);
      const float* xb = x + row * in + first;
      if (have < kQ4Block) {  // the row's zero-padded last block
        std::copy(xb, xb + have, padded_block);
        std::fill(padded_block + have, padded_block + kQ4Block, 0.0f);
        xb = padded_block;
      }
      float amax = 0, max = 0;
      for (int64_t i = 0; i < kQ4Block; ++i) {
        if (std::fabs(xb[i]) > amax) {
          amax = std::fabs(xb[i]);
          max = xb[i];
        }
      }
      const float scale = max / -8.0f;
      const float inv = scale != 0 ? 1.0f / scale : 0.0f;
      d[b] = scale;
      uint8_t* qb = q + b * (kQ4Block / 2);
      for (int64_t i = 0; i < kQ4Block / 2; ++i) {
        const int lo = std::min(15, static_cast<int>(xb[2 * i] * inv + 8.5f));
        const int hi = std::min(15, static_cast<int>(xb[2 * i + 1] * inv + 8.5f));
        qb[i] = static_cast<uint8_t>(lo | (hi << 4));
      }
    }
  });
  return fw;
}

FrozenWeight FrozenWeight::from_ggml(gguf::TensorType type, const uint8_t* data, int64_t out,
                                     int64_t in, std::shared_ptr<const gguf::File> owner) {
  if (!gguf::is_supported(type)) {
    throw std::runtime_error(std::string("tensor type ") + gguf::type_name(type) +
                             " is not supported (supported: " + gguf::supported_type_names() + ")");
  }
  if (in % gguf::block_size(type) != 0) {
    throw std::runtime_error(std::string("a ") + gguf::type_name(type) + " row of " +
                             std::to_string(in) + " values is not a whole number of blocks");
  }
  FrozenWeight fw;
  fw.storage_ = Storage::ggml_blocks;
  fw.out_ = out;
  fw.in_ = in;
  fw.ggml_type_ = type;
  fw.ggml_data_ = data;
  fw.owner_ = std::move(owner);
  return fw;
}

void FrozenWeight::dequantize_row(int64_t r, float* dst) const {
  switch (storage_) {
    case Storage::f32:
      std::copy_n(values_.data_ptr<float>() + r * in_, in_, dst);
      return;
    case Storage::int8_rows: {
      const float scale = scales_.data_ptr<float>()[r];
      const int8_t* qr = values_.data_ptr<int8_t>() + r * in_;
      for (int64_t i = 0; i < in_; ++i) dst[i] = scale * static_cast<float>(qr[i]);
      return;
    }
    case Storage::q4_blocks: {
      const int64_t padded = round_up(in_, kQ4Block);
      const int64_t n_blocks = padded / kQ4Block;
      const uint8_t* qr = values_.data_ptr<uint8_t>() + r * (padded / 2);
      const float* dr = scales_.data_ptr<float>() + r * n_blocks;
      auto block = [&](int64_t b, float* out) {
        const float scale = dr[b];
        const uint8_t* qb = qr + b * (kQ4Block / 2);
        for (int64_t i = 0; i < kQ4Block / 2; ++i) {
          out[2 * i] = scale * static_cast<float>((qb[i] & 0x0F) - 8);
          out[2 * i + 1] = scale * static_cast<float>((qb[i] >> 4) - 8);
        }
      };
      const int64_t full = in_ / kQ4Block;
      for (int64_t b = 0; b < full; ++b) block(b, dst + b * kQ4Block);
      if (full < n_blocks) {  // a last, partial block: only its first in % 32 values exist
        float tail[kQ4Block];
        block(full, tail);
        std::copy_n(tail, in_ - full * kQ4Block, dst + full * kQ4Block);
      }
      return;
    }
    case Storage::ggml_blocks:
      gguf::dequantize(ggml_type_, ggml_data_ + r * gguf::row_bytes(ggml_type_, in_), dst, in_);
      return;
  }
  throw std::logic_error("unknown frozen weight storage");
}

at::Tensor FrozenWeight::dequantize() const { return dequantize_rows(0, out_); }

void FrozenWeight::check_rows(int64_t begin, int64_t count) const {
  if (begin < 0 || count < 0 || begin + count > out_) {
    throw std::out_of_range("rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                            ") are outside the weight " + describe());
  }
}

at::Tensor FrozenWeight::dequantize_rows(int64_t begin, int64_t count) const {
  check_rows(begin, count);
  if (storage_ == Storage::f32) return values_.narrow(0, begin, count);
  if (storage_ != Storage::ggml_blocks && (!values_.device().is_cpu() || dtype_ != at::kFloat)) {
    return dequantize_codes(storage_, values_.narrow(0, begin, count), scales_.narrow(0, begin, count),
                            in_);
  }
  at::Tensor w = at::empty({count, in_}, at::kFloat);  // [count, in]
  float* dst = w.data_ptr<float>();
  at::parallel_for(0, count, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) dequantize_row(begin + r, dst + r * in_);
  });
  return w;
}

at::Tensor FrozenWeight::dequantize_bf16() const { return dequantize_rows_bf16(0, out_); }

Int8Rows FrozenWeight::int8_rows(int64_t begin, int64_t count) const {
  check_rows(begin, count);
  if (storage_ != Storage::int8_rows || dtype_ != at::kFloat || !values_.device().is_cpu()) {
    throw std::logic_error("int8 products take CPU int8 weights with float32 scales, not " + describe());
  }
  return {values_.narrow(0, begin, count), scales_.narrow(0, begin, count)};
}

at::Tensor FrozenWeight::dequantize_rows_bf16(int64_t begin, int64_t count) const {
  check_rows(begin, count);
  if (dtype_ != at::kFloat || (values_.defined() && !values_.device().is_cpu())) {
    throw std::logic_error("bf16 dequantization serves CPU float32 weights, not " + describe());
  }
  if (storage_ == Storage::f32) return values_.narrow(0, begin, count).to(at::kBFloat16);
  at::Tensor w = at::empty({count, in_}, at::kBFloat16);  // [count, in]
  auto* dst = reinterpret_cast<uint16_t*>(w.data_ptr<at::BFloat16>());
  const bool avx2 = kernels::has_avx2_fma();
  at::parallel_for(0, count, 16, [&](int64_t lo, int64_t hi) {
    std::vector<float> row;
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t src_row = begin + r;
      uint16_t* out = dst + r * in_;
      if (storage_ == Storage::int8_rows) {
        const int8_t* q = values_.data_ptr<int8_t>() + src_row * in_;
        const float scale = scales_.data_ptr<float>()[src_row];
        (avx2 ? int8_row_to_bf16_avx2 : int8_row_to_bf16_generic)(q, scale, in_, out);
        continue;
      }
      if (storage_ == Storage::q4_blocks && in_ % kQ4Block == 0) {
        const int64_t blocks = in_ / kQ4Block;
        const uint8_t* q = values_.data_ptr<uint8_t>() + src_row * (in_ / 2);
        const float* scales = scales_.data_ptr<float>() + src_row * blocks;
        (avx2 ? q4_blocks_to_bf16_avx2 : q4_blocks_to_bf16_generic)(q, scales, blocks, out);
        continue;
      }
      // ggml blocks, and q4 rows ending in a partial block: through float
      row.resize(static_cast<size_t>(in_));
      dequantize_row(src_row, row.data());
      for (int64_t i = 0; i < in_; ++i) out[i] = to_bf16_bits(row[i]);
    }
  });
  return w;
}

bool FrozenWeight::shares_data_with(const FrozenWeight& other) const {
  if (storage_ != other.storage_) return false;
  if (storage_ == Storage::ggml_blocks) return ggml_data_ != nullptr && ggml_data_ == other.ggml_data_;
  return values_.defined() && values_.is_same(other.values_);
}

at::Tensor FrozenWeight::gather_rows(const at::Tensor& ids) const {
  if (storage_ == Storage::f32) return at::embedding(values_, ids);
  if (storage_ != Storage::ggml_blocks && (!values_.device().is_cpu() || dtype_ != at::kFloat)) {
    const at::Tensor flat = ids.reshape({-1}).to(values_.device(), at::kLong);  // [n]
    std::vector<int64_t> shape = ids.sizes().vec();
    shape.push_back(in_);
    return dequantize_codes(storage_, values_.index_select(0, flat), scales_.index_select(0, flat), in_)
        .view(shape);  // [..., in]
  }
  const at::Tensor flat = ids.reshape({-1}).to(at::kLong).contiguous();  // [n]
  const int64_t n = flat.numel();
  const int64_t* id = flat.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (id[i] < 0 || id[i] >= out_) {
      throw std::out_of_range("row id " + std::to_string(id[i]) + " is outside the weight " +
                              describe());
    }
  }
  at::Tensor rows = at::empty({n, in_}, at::kFloat);  // [n, in]
  float* dst = rows.data_ptr<float>();
  at::parallel_for(0, n, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) dequantize_row(id[i], dst + i * in_);
  });
  std::vector<int64_t> shape = ids.sizes().vec();
  shape.push_back(in_);
  return rows.view(shape);  // [..., in]
}

void FrozenWeight::to(c10::Device device, c10::ScalarType dtype) {
  if (!at::isFloatingType(dtype)) {
    throw std::invalid_argument(std::string("a frozen weight computes in a floating dtype, not ") +
                                c10::toString(dtype));
  }
  const bool cpu_float32 = device.is_cpu() && dtype == at::kFloat;
  switch (storage_) {
    case Storage::f32:
      values_ = values_.to(device, dtype);
      break;
    case Storage::int8_rows:
    case Storage::q4_blocks:
      values_ = values_.to(device);
      scales_ = scales_.to(device, dtype);
      break;
    case Storage::ggml_blocks:
      if (cpu_float32) break;
      values_ = dequantize().to(device, dtype);  // [out, in], once (see the header)
      storage_ = Storage::f32;
      ggml_data_ = nullptr;
      owner_.reset();
      break;
  }
  dtype_ = dtype;
}

at::Tensor& FrozenWeight::float_weight() {
  if (storage_ != Storage::f32) {
    throw std::runtime_error("cannot merge an adapter into a quantized base weight (" + describe() +
                             "); load the base with base.quant: none to merge");
  }
  return values_;
}

int64_t FrozenWeight::bytes() const {
  switch (storage_) {
    case Storage::f32: return values_.numel() * static_cast<int64_t>(values_.element_size());
    case Storage::int8_rows:
    case Storage::q4_blocks:
      return values_.numel() + scales_.numel() * static_cast<int64_t>(scales_.element_size());
    case Storage::ggml_blocks: return static_cast<int64_t>(gguf::row_bytes(ggml_type_, in_)) * out_;
  }
  return 0;
}

std::string FrozenWeight::describe() const {
  std::string kind;
  switch (storage_) {
    case Storage::f32:
      kind = dtype_ == at::kBFloat16 ? "bf16" : dtype_ == at::kHalf ? "f16" : "f32";
      break;
    case Storage::int8_rows: kind = "int8"; break;
    case Storage::q4_blocks: kind = "q4"; break;
    case Storage::ggml_blocks: kind = gguf::type_name(ggml_type_); break;
  }
  return kind + " [" + std::to_string(out_) + ", " + std::to_string(in_) + "]";
}

}  // namespace cleave
