// Loading the base from GGUF files whose matrices are stored in each block
// type cleave reads (as llama-quantize mixes them in a Q4_K_M file), under
// every base.quant: the weights are the values the test packed into the
// blocks (tests/support/ggml_blocks.h), and the forward pass matches a
// float32 file holding those values.
#include "model/model_loader.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "tests/support/ggml_blocks.h"
#include "tests/support/tiny_model.h"

namespace cleave {
namespace {

using gguf::TensorType;

// Rows of 256 so that every K quant fits: dim, q_dim and ffn_dim are the
// widths (ne[0]) of the projections.
LlamaConfig wide_config() {
  LlamaConfig c = test::tiny_config();
  c.dim = 256;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 64;
  c.rope_dims = 64;
  c.ffn_dim = 256;
  c.n_layers = 2;
  return c;
}

struct BlockFiles {
  std::string blocks_path;  // matrices in the block type
  std::string values_path;  // the same matrices as float32
  // Matrix name -> the values and magnitudes the test packed.
  std::map<std::string, test::GgmlBlocks> packed;
};

// Writes a model whose 2-D tensors (embedding, projections, output) are
// random blocks of `type` and the float32 file of their values; norms as
// written by write_llama_gguf. `unsupported_tensor`, if given, is stored as
// random bytes of `unsupported_type` instead.
BlockFiles write_block_files(const std::string& dir, TensorType type,
                             const std::string& unsupported_tensor = "",
                             TensorType unsupported_type = TensorType::F32) {
  const LlamaConfig c = wide_config();
  const std::string float_path = dir + "/float.gguf";
  write_llama_gguf(float_path, c, random_llama_weights(c, 11), nullptr);
  auto file = gguf::File::open(float_path);
  gguf::Writer blocks, values;
  for (const auto& [key, value] : file->metadata()) {
    blocks.set(key, value);
    values.set(key, value);
  }
  BlockFiles out{dir + "/" + gguf::type_name(type) + ".gguf", dir + "/values.gguf", {}};
  uint32_t seed = 1;
  for (const gguf::TensorInfo& t : file->tensors()) {
    if (t.ne.size() != 2) {
      blocks.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
      values.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
      continue;
    }
    if (t.name == unsupported_tensor) {
      std::vector<uint8_t> bytes(gguf::row_bytes(unsupported_type, t.ne[0]) * t.ne[1], 0x5A);
      blocks.add_tensor(t.name, unsupported_type, t.ne, bytes.data(), bytes.size());
      values.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
      continue;
    }
    test::GgmlBlocks packed = test::random_ggml_blocks(type, t.n_elements(), seed++, 0.06);
    blocks.add_tensor(t.name, type, t.ne, packed.bytes.data(), packed.bytes.size());
    const std::vector<float> as_float(packed.values.begin(), packed.values.end());
    values.add_f32(t.name, t.ne, as_float.data());
    out.packed.emplace(t.name, std::move(packed));
  }
  blocks.write(out.blocks_path);
  values.write(out.values_path);
  return out;
}

std::string scratch(const std::string& suffix = "") {
  return test::scratch_dir(::testing::UnitTest::GetInstance()->current_test_info()->name() +
                           suffix);
}

const at::Tensor& prompt() {  // [B, T]
  static const at::Tensor tokens =
      at::tensor(std::vector<int64_t>{1, 5, 9, 63, 2, 17, 40, 8}, at::kLong).view({2, 4});
  return tokens;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Every weight of the native (and float) base equals the packed values, and
// the native base keeps block types as their blocks.
void expect_packed_weights(const LlamaModel& model, const BlockFiles& files, TensorType type,
                           BaseQuant quant) {
  std::vector<std::pair<std::string, const FrozenWeight*>> weights;
  for (const FrozenLinear* l : model.linears()) weights.emplace_back(l->name, &l->weight);
  weights.emplace_back("token_embd.weight", &model.token_embedding());
  for (const auto& [name, weight] : weights) {
    const test::GgmlBlocks& packed = files.packed.at(name);
    const bool keeps_blocks = quant == BaseQuant::native && gguf::block_size(type) > 1;
    EXPECT_EQ(weight->storage() == FrozenWeight::Storage::ggml_blocks, keeps_blocks) << name;
    if (keeps_blocks) {
      EXPECT_EQ(weight->describe().rfind(gguf::type_name(type), 0), 0u) << weight->describe();
    }
    const at::Tensor w = weight->dequantize().contiguous();  // [out, in]
    const float* got = w.data_ptr<float>();
    for (int64_t i = 0; i < w.numel(); ++i) {
      ASSERT_NEAR(got[i], packed.values[i], 1e-6 * packed.magnitude[i])
          << name << " element " << i << " under " << to_string(quant);
    }
  }
}

TEST(ModelLoader, EveryBlockTypeLoadsUnderEveryBaseQuant) {
  at::NoGradGuard no_grad;
  for (TensorType type : test::ggml_buildable_types()) {
    SCOPED_TRACE(gguf::type_name(type));
    const BlockFiles files =
        write_block_files(scratch(std::string("_") + gguf::type_name(type)), type);
    const at::Tensor reference =
        load_llama(files.values_path, BaseQuant::none)->forward(prompt(), nullptr);  // [B, T, vocab]
    for (BaseQuant quant : {BaseQuant::native, BaseQuant::none, BaseQuant::int8, BaseQuant::q4}) {
      SCOPED_TRACE(to_string(quant));
      auto model = load_llama(files.blocks_path, quant);
      const at::Tensor logits = model->forward(prompt(), nullptr);  // [B, T, vocab]
      // The same model from the float file under the same base.quant: int8 and
      // q4 then requantize the same values (up to float rounding).
      const at::Tensor same_quant =
          load_llama(files.values_path, quant)->forward(prompt(), nullptr);
      const double scale = reference.abs().max().item<double>();
      if (quant == BaseQuant::native || quant == BaseQuant::none) {
        expect_packed_weights(*model, files, type, quant);
        EXPECT_LT(max_abs_diff(logits, reference), 1e-4 * scale);
      } else {
        EXPECT_LT(max_abs_diff(logits, same_quant), 1e-3 * scale);
        // And within the requantization's error of the float model (measured
        // on these random weights: int8 up to 1.8%, q4 up to 23% of the
        // largest logit).
        EXPECT_LT(max_abs_diff(logits, reference), (quant == BaseQuant::int8 ? 0.05 : 0.5) * scale);
      }
    }
  }
}

// The native base of block types on another dtype: dequantized once to it.
TEST(ModelLoader, NativeBlocksMoveToBf16) {
  at::NoGradGuard no_grad;
  const BlockFiles files = write_block_files(scratch(), TensorType::Q5_0);
  auto blocks = load_llama(files.blocks_path, BaseQuant::native);
  auto values = load_llama(files.values_path, BaseQuant::none);
  blocks->to(at::kCPU, at::kBFloat16);
  values->to(at::kCPU, at::kBFloat16);
  EXPECT_EQ(blocks->linears()[0]->weight.storage(), FrozenWeight::Storage::f32);
  const at::Tensor a = blocks->forward(prompt(), nullptr).to(at::kFloat);
  const at::Tensor b = values->forward(prompt(), nullptr).to(at::kFloat);
  EXPECT_LT(max_abs_diff(a, b), 1e-2 * b.abs().max().item<double>());
}

TEST(ModelLoader, UnsupportedTypeIsRefusedNamingFileTensorAndType) {
  const std::string dir = scratch();
  const BlockFiles files =
      write_block_files(dir, TensorType::Q4_K, "blk.1.ffn_up.weight", TensorType::IQ2_XXS);
  for (BaseQuant quant : {BaseQuant::native, BaseQuant::none, BaseQuant::q4}) {
    try {
      load_llama(files.blocks_path, quant);
      FAIL() << "a tensor of type IQ2_XXS must be refused";
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(files.blocks_path), std::string::npos) << msg;
      EXPECT_NE(msg.find("blk.1.ffn_up.weight"), std::string::npos) << msg;
      EXPECT_NE(msg.find("IQ2_XXS"), std::string::npos) << msg;
      EXPECT_NE(msg.find("IQ4_XS"), std::string::npos) << msg;  // lists what is read
    }
  }
}

}  // namespace
}  // namespace cleave
