#include "model/frozen_weight.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model/gguf_quant.h"

namespace cleave {
namespace {

constexpr int64_t kQ4Block = 32;

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

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
  if (quant == BaseQuant::int8) {
    fw.storage_ = Storage::int8_rows;
    at::Tensor absmax = src.abs().amax(1);               // [out]
    fw.scales_ = (absmax / 127.0f).clamp_min(1e-12f);    // [out]
    fw.values_ = (src / fw.scales_.unsqueeze(1)).round().clamp(-127, 127).to(at::kChar);
    return fw;
  }
  // q4: symmetric blocks of 32 along the input dimension, like ggml's Q4_0:
  // d = max / -8 where max is the signed value of largest magnitude, q = x/d + 8 in [0, 15].
  fw.storage_ = Storage::q4_blocks;
  const int64_t padded = round_up(fw.in_, kQ4Block);
  const int64_t n_blocks = padded / kQ4Block;
  at::Tensor padded_src = at::zeros({fw.out_, padded}, at::kFloat);
  padded_src.narrow(1, 0, fw.in_).copy_(src);
  fw.values_ = at::empty({fw.out_, padded / 2}, at::kByte);
  fw.scales_ = at::empty({fw.out_, n_blocks}, at::kFloat);
  const float* x = padded_src.data_ptr<float>();
  uint8_t* q = fw.values_.data_ptr<uint8_t>();
  float* d = fw.scales_.data_ptr<float>();
  at::parallel_for(0, fw.out_ * n_blocks, 256, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float* xb = x + b * kQ4Block;
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
                             " is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)");
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

at::Tensor FrozenWeight::dequantize() const {
  switch (storage_) {
    case Storage::f32:
      return values_;
    case Storage::int8_rows: {
      at::Tensor w = at::empty({out_, in_}, at::kFloat);
      const int8_t* q = values_.data_ptr<int8_t>();
      const float* s = scales_.data_ptr<float>();
      float* dst = w.data_ptr<float>();
      const int64_t in = in_;
      at::parallel_for(0, out_, 16, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const float scale = s[r];
          const int8_t* qr = q + r * in;
          float* wr = dst + r * in;
          for (int64_t i = 0; i < in; ++i) wr[i] = scale * static_cast<float>(qr[i]);
        }
      });
      return w;
    }
    case Storage::q4_blocks: {
      at::Tensor w = at::empty({out_, in_}, at::kFloat);
      const uint8_t* q = values_.data_ptr<uint8_t>();
      const float* d = scales_.data_ptr<float>();
      float* dst = w.data_ptr<float>();
      const int64_t in = in_;
      const int64_t padded = round_up(in_, kQ4Block);
      const int64_t n_blocks = padded / kQ4Block;
      at::parallel_for(0, out_, 16, [&](int64_t begin, int64_t end) {
        float row[4096 + kQ4Block];
        std::vector<float> big;
        float* buf = row;
        if (padded > 4096) {
          big.resize(padded);
          buf = big.data();
        }
        for (int64_t r = begin; r < end; ++r) {
          const uint8_t* qr = q + r * (padded / 2);
          const float* dr = d + r * n_blocks;
          for (int64_t b = 0; b < n_blocks; ++b) {
            const float scale = dr[b];
            const uint8_t* qb = qr + b * (kQ4Block / 2);
            float* out = buf + b * kQ4Block;
            for (int64_t i = 0; i < kQ4Block / 2; ++i) {
              out[2 * i] = scale * static_cast<float>((qb[i] & 0x0F) - 8);
              out[2 * i + 1] = scale * static_cast<float>((qb[i] >> 4) - 8);
            }
          }
          std::copy(buf, buf + in, dst + r * in);
        }
      });
      return w;
    }
    case Storage::ggml_blocks: {
      at::Tensor w = at::empty({out_, in_}, at::kFloat);
      float* dst = w.data_ptr<float>();
      const uint64_t row_bytes = gguf::row_bytes(ggml_type_, in_);
      at::parallel_for(0, out_, 16, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          gguf::dequantize(ggml_type_, ggml_data_ + r * row_bytes, dst + r * in_, in_);
        }
      });
      return w;
    }
  }
  throw std::logic_error("unknown frozen weight storage");
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
    case Storage::f32: return values_.numel() * 4;
    case Storage::int8_rows: return values_.numel() + scales_.numel() * 4;
    case Storage::q4_blocks: return values_.numel() + scales_.numel() * 4;
    case Storage::ggml_blocks: return static_cast<int64_t>(gguf::row_bytes(ggml_type_, in_)) * out_;
  }
  return 0;
}

std::string FrozenWeight::describe() const {
  std::string kind;
  switch (storage_) {
    case Storage::f32: kind = "f32"; break;
    case Storage::int8_rows: kind = "int8"; break;
    case Storage::q4_blocks: kind = "q4"; break;
    case Storage::ggml_blocks: kind = gguf::type_name(ggml_type_); break;
  }
  return kind + " [" + std::to_string(out_) + ", " + std::to_string(in_) + "]";
}

}  // namespace cleave
