// The base fingerprint: a hash of the file's frozen tensors, the same under
// every base.quant, different for another base of the same shape.
#include "model/base_fingerprint.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>

#include "model/gguf.h"
#include "model/gguf_quant.h"
#include "model/model_loader.h"
#include "tests/support/tiny_model.h"

namespace cleave {
namespace {

// Copies `from` to `to` with its tensors in reverse order; with `quantize`,
// every matrix whose rows fit Q8_0 blocks is stored as Q8_0.
void rewrite(const std::string& from, const std::string& to, bool quantize) {
  auto file = gguf::File::open(from);
  gguf::Writer writer;
  for (const auto& [key, value] : file->metadata()) writer.set(key, value);
  std::vector<gguf::TensorInfo> tensors = file->tensors();
  std::reverse(tensors.begin(), tensors.end());
  for (const gguf::TensorInfo& t : tensors) {
    const bool fits_blocks = t.ne.size() == 2 && t.ne[0] % gguf::block_size(gguf::TensorType::Q8_0) == 0;
    if (quantize && fits_blocks && t.type == gguf::TensorType::F32) {
      std::vector<uint8_t> blocks(gguf::row_bytes(gguf::TensorType::Q8_0, t.n_elements()));
      gguf::quantize(gguf::TensorType::Q8_0, reinterpret_cast<const float*>(t.data), blocks.data(), t.n_elements());
      writer.add_tensor(t.name, gguf::TensorType::Q8_0, t.ne, blocks.data(), blocks.size());
    } else {
      writer.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
    }
  }
  writer.write(to);
}

// A LlamaModel built in code from `weights` (as random_llama_weights gives them), float32.
std::shared_ptr<LlamaModel> model_in_code(const LlamaConfig& c, const LlamaWeights& weights) {
  auto linear = [&](const std::string& name) {
    FrozenLinear l;
    l.name = name;
    l.weight = FrozenWeight::from_float(weights.at(name), BaseQuant::none);
    return l;
  };
  std::vector<LlamaBlock> blocks;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LlamaBlock b;
    b.attn_norm = weights.at(p + "attn_norm.weight");
    b.attn_q = linear(p + "attn_q.weight");
    b.attn_k = linear(p + "attn_k.weight");
    b.attn_v = linear(p + "attn_v.weight");
    b.attn_output = linear(p + "attn_output.weight");
    b.ffn_norm = weights.at(p + "ffn_norm.weight");
    b.ffn_gate = linear(p + "ffn_gate.weight");
    b.ffn_up = linear(p + "ffn_up.weight");
    b.ffn_down = linear(p + "ffn_down.weight");
    blocks.push_back(std::move(b));
  }
  return std::make_shared<LlamaModel>(c, FrozenWeight::from_float(weights.at("token_embd.weight"), BaseQuant::none),
                                      std::move(blocks), weights.at("output_norm.weight"), linear("output.weight"));
}

TEST(BaseFingerprint, OneFileHasOneFingerprintUnderEveryQuant) {
  const std::string path = test::write_tiny_model("fingerprint_quant");
  const std::string fingerprint = load_llama(path, BaseQuant::none)->base_fingerprint();
  EXPECT_EQ(fingerprint.rfind("sha256:", 0), 0u) << fingerprint;
  EXPECT_EQ(fingerprint.size(), std::string("sha256:").size() + 64 + 1 + base_dimensions(test::tiny_config()).size());
  EXPECT_NE(fingerprint.find(" dim=32 layers=3 heads=4/2 ffn=48 vocab=64"), std::string::npos) << fingerprint;
  for (BaseQuant quant : {BaseQuant::native, BaseQuant::int8, BaseQuant::q4}) {
    EXPECT_EQ(load_llama(path, quant)->base_fingerprint(), fingerprint) << to_string(quant);
  }

  // A file of ggml blocks: hashed as stored, so native (blocks kept) and
  // int8/q4 (requantized from them) agree too.
  const std::string q8_path = test::scratch_dir("fingerprint_quant_q8") + "/q8.gguf";
  rewrite(path, q8_path, /*quantize=*/true);
  const std::string q8 = load_llama(q8_path, BaseQuant::native)->base_fingerprint();
  EXPECT_NE(q8, fingerprint) << "Q8_0 weights are another base than the float ones";
  for (BaseQuant quant : {BaseQuant::none, BaseQuant::int8, BaseQuant::q4}) {
    EXPECT_EQ(load_llama(q8_path, quant)->base_fingerprint(), q8) << to_string(quant);
  }
}

TEST(BaseFingerprint, ASameShapeBaseWithOneWeightChangedDiffers) {
  const LlamaConfig c = test::tiny_config();
  LlamaWeights weights = random_llama_weights(c, 7);
  const std::string dir = test::scratch_dir("fingerprint_perturbed");
  write_llama_gguf(dir + "/a.gguf", c, weights, nullptr);
  weights.at("blk.2.ffn_up.weight")[5][3] += 1e-3f;
  write_llama_gguf(dir + "/b.gguf", c, weights, nullptr);
  EXPECT_NE(load_llama(dir + "/a.gguf", BaseQuant::q4)->base_fingerprint(),
            load_llama(dir + "/b.gguf", BaseQuant::q4)->base_fingerprint());
  // Another seed, the same shape.
  EXPECT_NE(load_llama(dir + "/a.gguf", BaseQuant::none)->base_fingerprint(),
            load_llama(test::write_tiny_model("fingerprint_seed", 8), BaseQuant::none)->base_fingerprint());
}

TEST(BaseFingerprint, TheFilesTensorOrderDoesNotMatter) {
  const std::string path = test::write_tiny_model("fingerprint_order");
  const std::string reversed = test::scratch_dir("fingerprint_order_reversed") + "/reversed.gguf";
  rewrite(path, reversed, /*quantize=*/false);
  EXPECT_EQ(load_llama(reversed, BaseQuant::none)->base_fingerprint(),
            load_llama(path, BaseQuant::none)->base_fingerprint());
}

TEST(BaseFingerprint, AModelBuiltInCodeHashesItsFloatWeightsLikeAFloatFile) {
  const LlamaConfig c = test::tiny_config();
  const LlamaWeights weights = random_llama_weights(c, 7);
  const std::string built = model_in_code(c, weights)->base_fingerprint();
  EXPECT_EQ(model_in_code(c, weights)->base_fingerprint(), built);   // deterministic
  EXPECT_EQ(load_llama(test::write_tiny_model("fingerprint_in_code", 7), BaseQuant::none)->base_fingerprint(), built);
  EXPECT_NE(model_in_code(c, random_llama_weights(c, 8))->base_fingerprint(), built);
}

TEST(BaseFingerprint, TensorsMustComeInNameOrder) {
  BaseFingerprint fingerprint;
  const float value = 1;
  fingerprint.add("token_embd.weight", 0, {1}, &value, sizeof value);
  EXPECT_THROW(fingerprint.add("blk.0.attn_q.weight", 0, {1}, &value, sizeof value), std::logic_error);
}

TEST(BaseFingerprint, TheDimensionsOnlyFormOfOlderFilesIsRecognised) {
  const LlamaConfig c = test::tiny_config();
  EXPECT_EQ(base_dimensions(c), "dim=32 layers=3 heads=4/2 ffn=48 vocab=64");
  EXPECT_TRUE(is_dimensions_only_fingerprint(base_dimensions(c)));
  EXPECT_FALSE(is_dimensions_only_fingerprint(
      load_llama(test::write_tiny_model("fingerprint_legacy"), BaseQuant::none)->base_fingerprint()));
}

}  // namespace
}  // namespace cleave
