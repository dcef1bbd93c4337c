// config_from_gguf: the hyperparameters of a GGUF file, and corrupt ones
// refused with std::runtime_error naming the file and key (fuzz/gguf_fuzz
// findings among them), never a crash.
#include "model/llama_config.h"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "tests/support/expect.h"

namespace cleave {
namespace {

// A one-block llama (dim 32, 4 heads, 2 kv heads, vocab 8) as GGUF bytes;
// `edit` changes the metadata before the embedding is added.
template <class Edit>
std::shared_ptr<const gguf::File> tiny_gguf(Edit edit) {
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::str("llama"));
  w.set("llama.embedding_length", gguf::Value::u32(32));
  w.set("llama.block_count", gguf::Value::u32(1));
  w.set("llama.feed_forward_length", gguf::Value::u32(64));
  w.set("llama.attention.head_count", gguf::Value::u32(4));
  w.set("llama.attention.head_count_kv", gguf::Value::u32(2));
  edit(w);
  const std::vector<float> embd(32 * 8, 0.5f);
  w.add_f32("token_embd.weight", {32, 8}, embd.data());
  return gguf::File::from_bytes("tiny.gguf", w.to_bytes());
}

std::string error_of(const gguf::File& file) {
  try {
    (void)config_from_gguf(file);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ConfigFromGguf, ReadsTheHyperparameters) {
  const LlamaConfig c = config_from_gguf(*tiny_gguf([](gguf::Writer&) {}));
  EXPECT_EQ(c.dim, 32);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 8);
  EXPECT_TRUE(c.tied_output);
}

// gguf_fuzz finding: head_count 0 without key_length divided the embedding
// length by zero (SIGFPE) before validate() could refuse it.
TEST(ConfigFromGguf, ZeroAttentionHeadsAreRefusedNotDividedBy) {
  const auto file = tiny_gguf([](gguf::Writer& w) { w.set("llama.attention.head_count", gguf::Value::u32(0)); });
  const std::string error = error_of(*file);
  EXPECT_CONTAINS(error, "tiny.gguf: llama.attention.head_count is 0");
}

TEST(ConfigFromGguf, NegativeAttentionHeadsAreRefused) {
  const auto file = tiny_gguf([](gguf::Writer& w) { w.set("llama.attention.head_count", gguf::Value::i32(-1)); });
  EXPECT_CONTAINS(error_of(*file), "llama.attention.head_count is -1");
}

TEST(ConfigFromGguf, AMistypedSizeNamesItsKey) {
  const auto file = tiny_gguf([](gguf::Writer& w) { w.set("llama.block_count", gguf::Value::str("one")); });
  EXPECT_CONTAINS(error_of(*file), "tiny.gguf: metadata key llama.block_count: metadata value is STRING");
}

TEST(ConfigFromGguf, AMissingSizeNamesItsKey) {
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::str("llama"));
  const auto file = gguf::File::from_bytes("bare.gguf", w.to_bytes());
  EXPECT_CONTAINS(error_of(*file), "bare.gguf: missing metadata key llama.embedding_length");
}

}  // namespace
}  // namespace cleave
