#include "model/kv_cache.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include "model/llama_config.h"

namespace cleave {

KvCache::KvCache(const LlamaConfig& config, int64_t begin, int64_t end, int64_t capacity)
    : begin_(begin), end_(end), capacity_(capacity), kv_heads_(config.n_kv_heads), head_dim_(config.head_dim) {
  if (begin < 0 || end > config.n_layers || begin > end) {
    throw std::out_of_range("KV cache for blocks [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") outside the model's " + std::to_string(config.n_layers) + " blocks");
  }
  if (capacity < 1) throw std::invalid_argument("KV cache capacity must be >= 1 position");
  keys_.resize(static_cast<size_t>(end - begin));
  values_.resize(static_cast<size_t>(end - begin));
}

int64_t KvCache::bytes_for(const LlamaConfig& config, int64_t blocks, int64_t capacity, int64_t element_bytes) {
  return 2 * blocks * capacity * config.n_kv_heads * config.head_dim * element_bytes;
}

int64_t KvCache::bytes(int64_t element_bytes) const {
  return 2 * (end_ - begin_) * capacity_ * kv_heads_ * head_dim_ * element_bytes;
}

std::pair<at::Tensor, at::Tensor> KvCache::append(int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  if (layer < begin_ || layer >= end_) {
    throw std::out_of_range("block " + std::to_string(layer) + " is not in this KV cache's blocks [" +
                            std::to_string(begin_) + ", " + std::to_string(end_) + ")");
  }
  const int64_t T = k.size(1);
  if (k.size(0) != 1) throw std::invalid_argument("the KV cache holds one sequence (batch 1)");
  if (length_ + T > capacity_) {
    throw std::length_error("KV cache full: " + std::to_string(length_) + " positions cached + " +
                            std::to_string(T) + " new exceed its capacity of " + std::to_string(capacity_));
  }
  at::Tensor& keys = keys_[static_cast<size_t>(layer - begin_)];
  at::Tensor& values = values_[static_cast<size_t>(layer - begin_)];
  if (!keys.defined()) {
    keys = at::empty({1, capacity_, kv_heads_, head_dim_}, k.options());
    values = at::empty({1, capacity_, kv_heads_, head_dim_}, v.options());
  }
  keys.narrow(1, length_, T).copy_(k);
  values.narrow(1, length_, T).copy_(v);
  // Batch 1: the first positions of [1, capacity, H, d] are one contiguous prefix.
  return {keys.narrow(1, 0, length_ + T), values.narrow(1, 0, length_ + T)};
}

void KvCache::advance(int64_t positions) {
  if (length_ + positions > capacity_) throw std::length_error("KV cache advanced past its capacity");
  length_ += positions;
}

}  // namespace cleave
