#include "model/base_fingerprint.h"

#include <stdexcept>

namespace cleave {
namespace {

constexpr const char* kPrefix = "sha256:";
// Names the hashed layout, so a later change to it cannot collide with this one.
constexpr char kDomain[] = "cleave base fingerprint v1";

}  // namespace

BaseFingerprint::BaseFingerprint() { digest_.update(kDomain, sizeof kDomain); }

void BaseFingerprint::put_u64(uint64_t value) {
  uint8_t bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));  // little endian
  digest_.update(bytes, sizeof bytes);
}

void BaseFingerprint::add(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& ne,
                          const void* data, uint64_t nbytes) {
  if (!last_name_.empty() && name <= last_name_) {
    throw std::logic_error("base fingerprint: tensor " + name + " added after " + last_name_ +
                           "; add tensors in increasing name order");
  }
  last_name_ = name;
  // Lengths before contents: no two different tensor lists hash the same bytes.
  put_u64(name.size());
  digest_.update(name.data(), name.size());
  put_u64(ggml_type);
  put_u64(ne.size());
  for (int64_t n : ne) put_u64(static_cast<uint64_t>(n));
  put_u64(nbytes);
  digest_.update(data, nbytes);
}

std::string BaseFingerprint::finish(const LlamaConfig& config) {
  return kPrefix + digest_.hex_digest() + " " + base_dimensions(config);
}

std::string base_dimensions(const LlamaConfig& c) {
  return "dim=" + std::to_string(c.dim) + " layers=" + std::to_string(c.n_layers) +
         " heads=" + std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) +
         " ffn=" + std::to_string(c.ffn_dim) + " vocab=" + std::to_string(c.vocab_size);
}

bool is_dimensions_only_fingerprint(const std::string& fingerprint) {
  return fingerprint.rfind("dim=", 0) == 0;
}

}  // namespace cleave
