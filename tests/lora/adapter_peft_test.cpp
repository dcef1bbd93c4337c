#include "lora/adapter_peft.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>

#include "lora/safetensors.h"
#include "model/attention.h"
#include "model/llama_model.h"
#include "model/model_loader.h"
#include "tests/support/tiny_model.h"
#include "util/json.h"

namespace cleave::lora {
namespace {

constexpr const char* kQKey = "base_model.model.model.layers.0.self_attn.q_proj";
constexpr const char* kKKey = "base_model.model.model.layers.0.self_attn.k_proj";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A safetensors file read with nothing but the format's definition and our
// JSON parser, independent of lora/safetensors.cpp.
struct RawSafetensors {
  uint64_t header_len = 0;
  json::Value header;
  std::string data;  // the data section

  explicit RawSafetensors(const std::string& path) {
    const std::string bytes = read_bytes(path);
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
    header = json::parse(bytes.substr(8, header_len));
    data = bytes.substr(8 + header_len);
  }
  // [rows, cols] float copy of an F32 tensor.
  at::Tensor matrix(const std::string& key) const {
    const json::Value& entry = header.at(key);
    EXPECT_EQ(entry.at("dtype").as_string(), "F32");
    const int64_t begin = entry.at("data_offsets")[0].as_int();
    at::Tensor out = at::empty({entry.at("shape")[0].as_int(), entry.at("shape")[1].as_int()}, at::kFloat);
    std::memcpy(out.data_ptr<float>(), data.data() + begin, out.numel() * sizeof(float));
    return out;
  }
};

// A safetensors file from a literal header and data section.
std::string raw_file(const std::string& header, const std::string& data) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  return bytes + header + data;
}

void expect_error(const std::function<void()>& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// HF row index -> GGUF row index for one projection, written from the
// models/README.md rule by hand: GGUF rows [n_head, head_dim/2, 2] become HF
// rows [n_head, 2, head_dim/2], so HF row (h, s, i) is GGUF row (h, i, s).
std::vector<int64_t> hf_to_gguf_row_index(int64_t n_head, int64_t head_dim) {
  std::vector<int64_t> index;
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t s = 0; s < 2; ++s) {
      for (int64_t i = 0; i < half; ++i) index.push_back(h * head_dim + i * 2 + s);
    }
  }
  return index;
}

at::Tensor rows_by_index(const at::Tensor& m, const std::vector<int64_t>& index) {
  return m.index_select(0, at::tensor(index, at::kLong));
}

class AdapterPeft : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = load_llama(test::write_tiny_model("peft_model"), BaseQuant::none);
  }
  // rank 3, alpha 6, every target, random B so the delta is non-zero.
  AdapterSet trained_adapter(LoraOptions options = {}) const {
    options.rank = 3;
    options.alpha = 6;
    options.dropout = 0.05;
    AdapterSet set = AdapterSet::create(*model_, options, 11);
    at::NoGradGuard no_grad;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(12);
    for (const auto& [name, pair] : set.pairs()) pair.b.uniform_(-1, 1, gen);
    return set;
  }
  std::shared_ptr<LlamaModel> model_;
};

TEST_F(AdapterPeft, ExportImportRoundTripIsExact) {
  const AdapterSet set = trained_adapter();
  const std::string dir = test::scratch_dir("peft_rt") + "/adapter";
  export_peft(set, *model_, dir);
  const AdapterSet loaded = import_peft(dir, *model_);

  EXPECT_EQ(loaded.options().rank, 3);
  EXPECT_DOUBLE_EQ(loaded.options().alpha, 6.0);
  EXPECT_DOUBLE_EQ(loaded.options().dropout, 0.05);
  EXPECT_EQ(loaded.options().targets,
            (std::vector<std::string>{"down", "gate", "k", "o", "q", "up", "v"}));
  EXPECT_TRUE(loaded.options().layers.empty());
  ASSERT_EQ(loaded.pairs().size(), set.pairs().size());
  for (const auto& [name, pair] : set.pairs()) {
    ASSERT_TRUE(loaded.pairs().count(name)) << name;
    EXPECT_TRUE(at::equal(loaded.pairs().at(name).a, pair.a)) << name;
    EXPECT_TRUE(at::equal(loaded.pairs().at(name).b, pair.b)) << name;
  }
}

TEST_F(AdapterPeft, QAndKLoraBRowsArePermutedToHfLayoutAndNothingElseIs) {
  const AdapterSet set = trained_adapter();
  const std::string dir = test::scratch_dir("peft_perm");
  export_peft(set, *model_, dir);
  const RawSafetensors file(dir + "/adapter_model.safetensors");
  const LlamaConfig& c = model_->config();

  const LoraPair& q = set.pairs().at("blk.0.attn_q.weight");
  const LoraPair& k = set.pairs().at("blk.0.attn_k.weight");
  const at::Tensor hf_q = rows_by_index(q.b.detach(), hf_to_gguf_row_index(c.n_heads, c.head_dim));
  const at::Tensor hf_k = rows_by_index(k.b.detach(), hf_to_gguf_row_index(c.n_kv_heads, c.head_dim));
  EXPECT_TRUE(at::equal(file.matrix(std::string(kQKey) + ".lora_B.weight"), hf_q));
  EXPECT_TRUE(at::equal(file.matrix(std::string(kKKey) + ".lora_B.weight"), hf_k));
  // The permutation moved something: the test would notice a missing one.
  EXPECT_FALSE(at::equal(hf_q, q.b.detach()));
  EXPECT_TRUE(at::equal(file.matrix(std::string(kQKey) + ".lora_A.weight"), q.a.detach()));
  EXPECT_TRUE(at::equal(file.matrix(std::string(kKKey) + ".lora_A.weight"), k.a.detach()));
  EXPECT_TRUE(at::equal(file.matrix("base_model.model.model.layers.2.self_attn.v_proj.lora_B.weight"),
                        set.pairs().at("blk.2.attn_v.weight").b.detach()));
  EXPECT_TRUE(at::equal(file.matrix("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"),
                        set.pairs().at("blk.1.ffn_down.weight").b.detach()));
  // The exposed helpers agree with the hand-built index and invert each other.
  EXPECT_TRUE(at::equal(gguf_rows_to_hf(q.b.detach(), c.n_heads), hf_q));
  EXPECT_TRUE(at::equal(hf_rows_to_gguf(hf_q, c.n_heads), q.b.detach()));
}

// HF Llama's q/k projection (rows permuted) with rotate-half RoPE gives the
// same attention scores as GGUF's rows with adjacent-pair RoPE, with the
// exported lora_B folded in.
TEST_F(AdapterPeft, HfLayoutWithRotateHalfRopeGivesTheSameAttentionScores) {
  LoraOptions options;
  options.targets = {"q", "k"};
  const AdapterSet set = trained_adapter(options);
  const std::string dir = test::scratch_dir("peft_rope");
  export_peft(set, *model_, dir);
  const RawSafetensors file(dir + "/adapter_model.safetensors");
  const LlamaConfig& c = model_->config();
  const double scale = set.scale();
  const int64_t T = 6;

  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor x = at::randn({1, T, c.dim}, gen);  // [B, T, dim]
  auto project = [&](const at::Tensor& w, const at::Tensor& b, const at::Tensor& a, int64_t heads,
                     RopeStyle style) {
    const at::Tensor w_eff = w + scale * at::matmul(b, a);  // [heads * head_dim, dim]
    const at::Tensor y = at::matmul(x, w_eff.t()).view({1, T, heads, c.head_dim});
    return apply_rope(y, 3, c.rope_dims, c.rope_base, style);  // [B, T, heads, head_dim]
  };
  auto scores = [&](const at::Tensor& q, const at::Tensor& k) {  // -> [Hq, T, T]
    const at::Tensor k_per_q = k.repeat_interleave(c.n_heads / c.n_kv_heads, 2);
    return at::einsum("bthd,bshd->hts", {q, k_per_q});
  };
  const at::Tensor wq = model_->find_linear("blk.0.attn_q.weight")->weight.dequantize();
  const at::Tensor wk = model_->find_linear("blk.0.attn_k.weight")->weight.dequantize();
  const LoraPair& q = set.pairs().at("blk.0.attn_q.weight");
  const LoraPair& k = set.pairs().at("blk.0.attn_k.weight");

  const at::Tensor gguf_scores =
      scores(project(wq, q.b.detach(), q.a.detach(), c.n_heads, RopeStyle::adjacent_pairs),
             project(wk, k.b.detach(), k.a.detach(), c.n_kv_heads, RopeStyle::adjacent_pairs));
  const at::Tensor wq_hf = rows_by_index(wq, hf_to_gguf_row_index(c.n_heads, c.head_dim));
  const at::Tensor wk_hf = rows_by_index(wk, hf_to_gguf_row_index(c.n_kv_heads, c.head_dim));
  const at::Tensor bq_hf = file.matrix(std::string(kQKey) + ".lora_B.weight");
  const at::Tensor bk_hf = file.matrix(std::string(kKKey) + ".lora_B.weight");
  const at::Tensor aq = file.matrix(std::string(kQKey) + ".lora_A.weight");
  const at::Tensor ak = file.matrix(std::string(kKKey) + ".lora_A.weight");
  const at::Tensor hf_scores = scores(project(wq_hf, bq_hf, aq, c.n_heads, RopeStyle::halves),
                                      project(wk_hf, bk_hf, ak, c.n_kv_heads, RopeStyle::halves));
  EXPECT_TRUE(at::allclose(hf_scores, gguf_scores, /*rtol=*/0, /*atol=*/1e-5))
      << (hf_scores - gguf_scores).abs().max().item<float>();

  // Control: the unpermuted (GGUF-layout) B in the HF model does not agree.
  const at::Tensor wrong = scores(project(wq_hf, q.b.detach(), aq, c.n_heads, RopeStyle::halves),
                                  project(wk_hf, k.b.detach(), ak, c.n_kv_heads, RopeStyle::halves));
  EXPECT_GT((wrong - gguf_scores).abs().max().item<float>(), 1e-3);
}

TEST_F(AdapterPeft, SafetensorsHeaderIsJsonWithContiguousEightByteAlignedData) {
  const AdapterSet set = trained_adapter();
  const std::string dir = test::scratch_dir("peft_header");
  export_peft(set, *model_, dir);
  const std::string path = dir + "/adapter_model.safetensors";
  const RawSafetensors file(path);

  EXPECT_EQ(file.header_len % 8, 0u);
  EXPECT_EQ(file.header.at("__metadata__").at("format").as_string(), "pt");
  uint64_t expected_begin = 0;
  size_t n_tensors = 0;
  for (const auto& [key, entry] : file.header.as_object()) {
    if (key == "__metadata__") continue;
    ++n_tensors;
    EXPECT_EQ(entry.at("dtype").as_string(), "F32") << key;
    const int64_t rows = entry.at("shape")[0].as_int(), cols = entry.at("shape")[1].as_int();
    EXPECT_EQ(entry.at("data_offsets")[0].as_int(), static_cast<int64_t>(expected_begin)) << key;
    EXPECT_EQ(entry.at("data_offsets")[1].as_int(), static_cast<int64_t>(expected_begin) + rows * cols * 4)
        << key;
    expected_begin += rows * cols * 4;
    if (key.find(".lora_A.") != std::string::npos) {
      EXPECT_EQ(rows, 3) << key;
    } else {
      EXPECT_EQ(cols, 3) << key;
    }
  }
  EXPECT_EQ(n_tensors, set.pairs().size() * 2);
  EXPECT_EQ(file.data.size(), expected_begin);
  // Shapes are PEFT's: A (r, in), B (out, r).
  EXPECT_EQ(file.header.at(std::string(kQKey) + ".lora_A.weight").at("shape"),
            json::Value(json::Array{3, 32}));
  EXPECT_EQ(file.header.at(std::string(kKKey) + ".lora_B.weight").at("shape"),
            json::Value(json::Array{16, 3}));
  EXPECT_EQ(file.header.at("base_model.model.model.layers.2.mlp.down_proj.lora_A.weight").at("shape"),
            json::Value(json::Array{3, 48}));
}

TEST_F(AdapterPeft, AdapterConfigJsonSaysWhatPeftNeeds) {
  LoraOptions options;
  options.targets = {"v", "q", "down"};
  const std::string dir = test::scratch_dir("peft_config");
  export_peft(trained_adapter(options), *model_, dir + "/all", "org/tiny-llama");
  const json::Value config = json::parse_file(dir + "/all/adapter_config.json");
  EXPECT_EQ(config.at("peft_type").as_string(), "LORA");
  EXPECT_EQ(config.at("task_type").as_string(), "CAUSAL_LM");
  EXPECT_EQ(config.at("r").as_int(), 3);
  EXPECT_DOUBLE_EQ(config.at("lora_alpha").as_double(), 6.0);
  EXPECT_DOUBLE_EQ(config.at("lora_dropout").as_double(), 0.05);
  EXPECT_EQ(config.at("target_modules"), json::Value(json::Array{"down_proj", "q_proj", "v_proj"}));
  EXPECT_EQ(config.at("bias").as_string(), "none");
  EXPECT_FALSE(config.at("fan_in_fan_out").as_bool());
  EXPECT_TRUE(config.at("inference_mode").as_bool());
  EXPECT_EQ(config.at("base_model_name_or_path").as_string(), "org/tiny-llama");
  EXPECT_TRUE(config.at("layers_to_transform").is_null());

  options.layers = {2, 0};
  export_peft(trained_adapter(options), *model_, dir + "/some");
  const json::Value some = json::parse_file(dir + "/some/adapter_config.json");
  EXPECT_EQ(some.at("layers_to_transform"), json::Value(json::Array{0, 2}));
  EXPECT_TRUE(some.at("base_model_name_or_path").is_null());
  EXPECT_EQ(import_peft(dir + "/some", *model_).options().layers, (std::vector<int64_t>{0, 2}));
  // Atomic writes leave no temporaries behind.
  EXPECT_FALSE(std::ifstream(dir + "/some/adapter_config.json.tmp").good());
  EXPECT_FALSE(std::ifstream(dir + "/some/adapter_model.safetensors.tmp").good());
}

TEST_F(AdapterPeft, HalfPrecisionTensorsFromOtherWritersImport) {
  const std::string dir = test::scratch_dir("peft_half");
  std::vector<uint16_t> a(2 * 32, 0x3C00);  // F16 1.0, [r=2, in=32]
  std::vector<uint16_t> b(16 * 2, 0x3F00);  // BF16 0.5, [out=16, r=2]
  const std::string key = "base_model.model.model.layers.1.self_attn.v_proj";
  safetensors::write(dir + "/adapter_model.safetensors",
                     {{key + ".lora_A.weight", "F16", {2, 32}, a.data(), a.size() * 2},
                      {key + ".lora_B.weight", "BF16", {16, 2}, b.data(), b.size() * 2}},
                     {{"format", "pt"}});
  write_bytes(dir + "/adapter_config.json",
              R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["v_proj"]})");
  const AdapterSet set = import_peft(dir, *model_);
  EXPECT_EQ(set.options().rank, 2);
  EXPECT_DOUBLE_EQ(set.scale(), 2.0);
  EXPECT_EQ(set.options().targets, (std::vector<std::string>{"v"}));
  EXPECT_EQ(set.options().layers, (std::vector<int64_t>{1}));
  const LoraPair& pair = set.pairs().at("blk.1.attn_v.weight");
  EXPECT_TRUE(at::equal(pair.a, at::ones({2, 32})));
  EXPECT_TRUE(at::equal(pair.b, at::full({16, 2}, 0.5f)));

  // use_rslora: scale alpha / sqrt(r) is kept by folding sqrt(r) into alpha.
  write_bytes(dir + "/adapter_config.json",
              R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "use_rslora": true})");
  EXPECT_NEAR(import_peft(dir, *model_).scale(), 4.0 / std::sqrt(2.0), 1e-12);
}

TEST_F(AdapterPeft, CorruptSafetensorsAreRejectedWithClearErrors) {
  const std::string dir = test::scratch_dir("peft_corrupt");
  export_peft(trained_adapter(), *model_, dir);
  const std::string path = dir + "/adapter_model.safetensors";
  const std::string good = read_bytes(path);
  auto import = [&] { import_peft(dir, *model_); };

  write_bytes(path, good.substr(0, good.size() - 10));
  expect_error(import, "past the end of the");
  write_bytes(path, good.substr(0, 5));
  expect_error(import, "too short for the 8-byte header length");
  std::string lying = good;
  lying[4] = '\x01';  // header length += 2^32
  write_bytes(path, lying);
  expect_error(import, "runs past the end");
  write_bytes(path, raw_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 400]}}",
                             std::string(8, '\0')));
  expect_error(import, "data_offsets [0, 400] past the end of the 8-byte data section");
  write_bytes(path, raw_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}",
                             std::string(12, '\0')));
  expect_error(import, "needs 16 bytes but data_offsets span 12");
  write_bytes(path, raw_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
                             std::string(8, '\0')));
  expect_error(import, "4 bytes after the last tensor");
  write_bytes(path, raw_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                             " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
                             std::string(4, '\0')));
  expect_error(import, "overlaps or leaves a gap");
  write_bytes(path, raw_file("{\"a\": [1,", ""));
  expect_error(import, "header is not JSON");
  write_bytes(path, raw_file("{\"a\": {\"dtype\": \"Q4\", \"shape\": [1], \"data_offsets\": [0, 1]}}", "x"));
  expect_error(import, "unknown dtype 'Q4'");

  // Well-formed files that are not an adapter for this base.
  std::vector<int32_t> ints(3 * 32);
  safetensors::write(path, {{std::string(kQKey) + ".lora_A.weight", "I32", {3, 32}, ints.data(), ints.size() * 4}},
                     {});
  expect_error(import, "expected F32, F16 or BF16");
  std::vector<float> a(3 * 24), b(32 * 3);
  safetensors::write(path, {{std::string(kQKey) + ".lora_A.weight", "F32", {3, 24}, a.data(), a.size() * 4},
                            {std::string(kQKey) + ".lora_B.weight", "F32", {32, 3}, b.data(), b.size() * 4}},
                     {});
  expect_error(import, "is this the base model the adapter was trained on?");
  safetensors::write(path, {{"base_model.model.model.layers.0.self_attn.rotary.lora_A.weight", "F32", {3, 24},
                             a.data(), a.size() * 4}},
                     {});
  expect_error(import, "unexpected tensor base_model.model.model.layers.0.self_attn.rotary");

  write_bytes(path, good);
  write_bytes(dir + "/adapter_config.json", R"({"peft_type": "IA3", "r": 3, "lora_alpha": 6})");
  expect_error(import, "expected \"LORA\"");
  write_bytes(dir + "/adapter_config.json", R"({"peft_type": "LORA", "r": 4, "lora_alpha": 6})");
  expect_error(import, "config.json says r = 4");
}

TEST_F(AdapterPeft, AdapterForAnotherBaseIsRefused) {
  const std::string dir = test::scratch_dir("peft_other");
  export_peft(trained_adapter(), *model_, dir);
  LlamaConfig other = test::tiny_config();
  other.ffn_dim = 40;
  auto other_model = load_llama(test::write_tiny_model("peft_other_model", 7, other), BaseQuant::none);
  expect_error([&] { import_peft(dir, *other_model); }, "different base model");
  expect_error([&] { import_peft(dir + "/missing", *model_); }, "is it a PEFT adapter directory?");
}

TEST_F(AdapterPeft, AdapterForASameShapeBaseWithOtherWeightsIsRefused) {
  const std::string dir = test::scratch_dir("peft_same_shape");
  export_peft(trained_adapter(), *model_, dir);
  auto other_model = load_llama(test::write_tiny_model("peft_same_shape_model", 8), BaseQuant::none);
  expect_error([&] { import_peft(dir, *other_model); }, "different base model (" + model_->base_fingerprint());
  // The same weights (a copy of the file, held as q4) are the same base.
  auto q4 = load_llama(test::write_tiny_model("peft_same_shape_copy"), BaseQuant::q4);
  EXPECT_EQ(import_peft(dir, *q4).pairs().size(), trained_adapter().pairs().size());
}

}  // namespace
}  // namespace cleave::lora
