#include "aggregator/secure_encoding.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace cleave::aggregator {

const std::vector<std::string>& secure_metric_names() {
  static const std::vector<std::string> names = {"eval_perplexity", "eval_perplexity_global", "train_loss",
                                                 "train_loss_last", "train_seconds",   "train_tokens"};
  return names;
}

int64_t secure_vector_length(const NamedTensors& like, size_t metrics) {
  int64_t n = 1 + 2 * static_cast<int64_t>(metrics);
  for (const auto& [name, tensor] : like) n += tensor.numel();
  return n;
}

int32_t metric_scale_bits_for(int64_t sites, int64_t weight_cap) {
  int32_t bits = 16;
  while (bits > 0 && !secagg::fits_in_sum(sites, weight_cap, secagg::kMetricRange, bits)) --bits;
  return bits;
}

EncodedUpdate encode_update(const NamedTensors& delta, int64_t num_samples, const std::map<std::string, double>& metrics,
                            const secagg::RoundParams& params) {
  EncodedUpdate out;
  out.weight = params.uniform_weights ? 1 : std::clamp<int64_t>(num_samples, 1, params.weight_cap);
  const int64_t length = secure_vector_length(delta, params.metric_names.size());
  if (length != params.vector_length) {
    throw std::invalid_argument("the update encodes to " + std::to_string(length) + " words, the round expects " +
                                std::to_string(params.vector_length));
  }
  out.words.reserve(static_cast<size_t>(length));
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
  const double metric_scale = std::ldexp(static_cast<double>(out.weight), params.metric_scale_bits);
  for (const std::string& name : params.metric_names) {
    auto it = metrics.find(name);
    const bool reported = it != metrics.end() && std::isfinite(it->second);
    const double value = reported ? std::clamp(it->second, -secagg::kMetricRange, secagg::kMetricRange) : 0.0;
    out.words.push_back(static_cast<uint64_t>(static_cast<int64_t>(std::llround(value * metric_scale))));
    out.words.push_back(reported ? static_cast<uint64_t>(out.weight) : 0);
  }
  return out;
}

DecodedSum decode_sum(const std::vector<uint64_t>& sum, const NamedTensors& like, const secagg::RoundParams& params) {
  const int64_t length = secure_vector_length(like, params.metric_names.size());
  if (static_cast<int64_t>(sum.size()) != length) {
    throw std::invalid_argument("the unmasked sum has " + std::to_string(sum.size()) + " words, the adapters need " +
                                std::to_string(length));
  }
  DecodedSum out;
  const int64_t cap = params.uniform_weights ? 1 : params.weight_cap;
  const int64_t max_weight = static_cast<int64_t>(params.sampled.size()) * cap;
  size_t offset = 0;
  for (const auto& [name, tensor] : like) {
    const int64_t n = tensor.numel();
    at::Tensor fixed = at::empty({n}, at::kLong);
    std::memcpy(fixed.data_ptr<int64_t>(), sum.data() + offset, static_cast<size_t>(n) * sizeof(int64_t));
    offset += static_cast<size_t>(n);
    out.weighted_sum[name] = fixed.to(at::kDouble).mul(std::ldexp(1.0, -params.scale_bits)).view(tensor.sizes());
  }
  out.total_weight = static_cast<int64_t>(sum[offset++]);
  if (out.total_weight <= 0 || out.total_weight > max_weight) {
    throw std::invalid_argument("the unmasked sum's total weight is " + std::to_string(out.total_weight) +
                                ": the masks did not cancel");
  }
  for (const std::string& name : params.metric_names) {
    const auto weighted = static_cast<int64_t>(sum[offset++]);
    const auto weight = static_cast<int64_t>(sum[offset++]);
    if (weight < 0 || weight > out.total_weight) {
      throw std::invalid_argument("the unmasked weight of metric " + name + " is " + std::to_string(weight) +
                                  ": the masks did not cancel");
    }
    if (weight > 0) {
      out.metrics[name] = std::ldexp(static_cast<double>(weighted), -params.metric_scale_bits) /
                          static_cast<double>(weight);
    }
  }
  return out;
}

}  // namespace cleave::aggregator
