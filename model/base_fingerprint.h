// What identifies a base model: adapter files, split sessions (Hello) and
// site registrations carry it, and one made for another base is refused.
//
//   "sha256:<64 hex digits> dim=64 layers=5 heads=8/4 ffn=172 vocab=512"
//
// The SHA-256 covers the frozen tensors the model is built from, in name
// order: each one's name, ggml type, shape (ne) and bytes as the file stores
// them. So two bases of one shape but other weights differ, and one file has
// one fingerprint whatever base.quant holds it in memory: a site running it
// as int8 and a split server running it as q4 agree. The dimensions are for
// people reading an error. The loader computes it once (LlamaModel::
// base_fingerprint()); a model built in code hashes its float weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_config.h"
#include "util/sha256.h"

namespace cleave {

class BaseFingerprint {
 public:
  BaseFingerprint();
  // One frozen tensor, `nbytes` at `data` in ggml type `ggml_type` with
  // shape `ne` (ggml order). Names must come in increasing order (throws
  // std::logic_error otherwise), so the file's tensor order does not matter.
  void add(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& ne, const void* data,
           uint64_t nbytes);
  // The fingerprint of everything added; the object is spent afterwards.
  std::string finish(const LlamaConfig& config);

 private:
  void put_u64(uint64_t value);
  Sha256 digest_;
  std::string last_name_;
};

// "dim=64 layers=5 heads=8/4 ffn=172 vocab=512".
std::string base_dimensions(const LlamaConfig& config);

// A fingerprint as cleave recorded it before it hashed the weights (the
// dimensions alone), which cannot tell two bases of one shape apart.
bool is_dimensions_only_fingerprint(const std::string& fingerprint);

}  // namespace cleave
