// The keys and values of blocks [begin, end) for the positions of one
// sequence seen so far: what a decoder keeps between generation steps so that
// each step computes only its new positions. Local generation holds one for
// every block; a split site one for its bottom (and top) blocks and the split
// server one per generation session for the blocks it serves.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace cleave {

struct LlamaConfig;

class KvCache {
 public:
  KvCache() = default;
  // Room for `capacity` positions of blocks [begin, end) of a model with
  // `config`'s kv heads and head width; the memory is taken at the first
  // append, on the device and in the dtype of the keys appended.
  KvCache(const LlamaConfig& config, int64_t begin, int64_t end, int64_t capacity);

  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }   // positions cached

  // Bytes the cache holds once allocated, at `element_bytes` per value (4 for
  // float32): 2 (keys, values) x blocks x capacity x kv_heads x head_dim.
  int64_t bytes(int64_t element_bytes) const;
  static int64_t bytes_for(const LlamaConfig& config, int64_t blocks, int64_t capacity, int64_t element_bytes);

  // Stores block `layer`'s keys and values of the next T positions, k and v:
  // [1, T, kv_heads, head_dim], and returns every cached position's including
  // them: [1, length() + T, kv_heads, head_dim] each. Throws when the
  // positions do not fit (capacity) or the layer is not one of the cache's.
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& k, const at::Tensor& v);
  // After every block appended its T positions: they count as cached.
  void advance(int64_t positions);
  // Forgets every position (the memory stays allocated).
  void clear() { length_ = 0; }

 private:
  int64_t begin_ = 0, end_ = 0, capacity_ = 0, length_ = 0;
  int64_t kv_heads_ = 0, head_dim_ = 0;
  std::vector<at::Tensor> keys_, values_;   // per block: [1, capacity, kv_heads, head_dim]
};

}  // namespace cleave
