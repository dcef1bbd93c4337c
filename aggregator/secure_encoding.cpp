#include "aggregator/secure_encoding.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace cleave::aggregator {

int64_t secure_vector_length(const NamedTensors& like) {
  int64_t n = 1;
  for (const auto& [name, tensor] : like) n += tensor.numel();
  return n;
}

EncodedUpdate encode_update(const NamedTensors& delta, int64_t num_samples, const secagg::RoundParams& params) {
  EncodedUpdate out;
  out.weight = params.uniform_weights ? 1 : std::clamp<int64_t>(num_samples, 1, params.weight_cap);
  out.words.reserve(static_cast<size_t>(secure_vector_length(delta)));
  const double scale = std::ldexp(static_cast<double>(out.weight), params.scale_bits);
  for (const auto& [name, tensor] : delta) {
    const at::Tensor x = tensor.detach().to(at::kDouble).contiguous().view({-1});
    out.clipped += (x.abs() > params.clip_range).sum().item<int64_t>();
    // [numel] int64: round(w * clip(x) * 2^scale_bits), at most 2^62 in magnitude (fits_in_sum).
    const at::Tensor fixed = x.clamp(-params.clip_range, params.clip_range).mul(scale).round().to(at::kLong).contiguous();
    const int64_t* values = fixed.data_ptr<int64_t>();
    for (int64_t i = 0; i < fixed.numel(); ++i) out.words.push_back(static_cast<uint64_t>(values[i]));
  }
  out.words.push_back(static_cast<uint64_t>(out.weight));
  return out;
}

DecodedSum decode_sum(const std::vector<uint64_t>& sum, const NamedTensors& like, const secagg::RoundParams& params) {
  if (static_cast<int64_t>(sum.size()) != secure_vector_length(like)) {
    throw std::invalid_argument("the unmasked sum has " + std::to_string(sum.size()) + " words, the adapters need " +
                                std::to_string(secure_vector_length(like)));
  }
  DecodedSum out;
  out.total_weight = static_cast<int64_t>(sum.back());
  const int64_t cap = params.uniform_weights ? 1 : params.weight_cap;
  if (out.total_weight <= 0 || out.total_weight > static_cast<int64_t>(params.sampled.size()) * cap) {
    throw std::invalid_argument("the unmasked sum's total weight is " + std::to_string(out.total_weight) +
                                ": the masks did not cancel");
  }
  const double unit = std::ldexp(1.0, -params.scale_bits);
  size_t offset = 0;
  for (const auto& [name, tensor] : like) {
    const int64_t n = tensor.numel();
    at::Tensor fixed = at::empty({n}, at::kLong);
    std::memcpy(fixed.data_ptr<int64_t>(), sum.data() + offset, static_cast<size_t>(n) * sizeof(int64_t));
    offset += static_cast<size_t>(n);
    out.weighted_sum[name] = fixed.to(at::kDouble).mul(unit).view(tensor.sizes());
  }
  return out;
}

}  // namespace cleave::aggregator
