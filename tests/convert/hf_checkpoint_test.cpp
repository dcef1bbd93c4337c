// convert::hf_to_gguf / open_hf_checkpoint: a Hugging Face checkpoint written
// by the test from a GGUF model (tests/support/hf_layout.h: its own name table
// and q/k permutation, two safetensors shards and an index) gives the GGUF's
// logits; bad checkpoints are refused naming the file and the field.
#include "convert/hf_checkpoint.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "convert/hf_tokenizer.h"
#include "model/bpe.h"
#include "model/gguf.h"
#include "model/model_loader.h"
#include "model/tokenizer.h"
#include "model/vocab_builder.h"
#include "tests/support/expect.h"
#include "tests/support/hf_layout.h"
#include "tests/support/tiny_model.h"

namespace cleave {
namespace {

namespace fs = std::filesystem;

constexpr double kTolerance = 1e-5;

at::Tensor prompt(int64_t vocab) {  // [2, 7]
  return at::arange(14, at::kLong).mul(37).remainder(vocab).reshape({2, 7});
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// A tiny random model with a SentencePiece vocabulary, as GGUF.
struct TinyModel {
  std::string gguf_path;
  LlamaConfig config;
  LlamaWeights weights;
  Vocabulary vocab;
};

TinyModel tiny_model(const std::string& dir, LlamaConfig c = test::tiny_config(), uint64_t seed = 11) {
  TinyModel m;
  m.vocab =
      build_vocabulary({"the patient has a mild fever and a dry cough", "rest and fluids were advised"});
  c.vocab_size = static_cast<int64_t>(m.vocab.tokens.size());
  m.config = c;
  m.weights = random_llama_weights(c, seed);
  if (c.qkv_bias) {  // random, so that a misplaced bias shows
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1);
    for (auto& [name, w] : m.weights) {
      if (name.find(".bias") != std::string::npos) w = at::empty_like(w).normal_(0.0, 0.1, gen);
    }
  }
  m.gguf_path = dir + "/model.gguf";
  write_llama_gguf(m.gguf_path, c, m.weights, &m.vocab);
  return m;
}

std::string hf_dir(const std::string& scratch) {
  const std::string dir = scratch + "/hf";
  fs::create_directories(dir);
  return dir;
}

convert::HfImportOptions vocab_from(const std::string& gguf) {
  convert::HfImportOptions options;
  options.vocab_gguf = gguf;
  return options;
}

at::Tensor logits_of(std::shared_ptr<const gguf::File> file, int64_t vocab) {
  return load_llama(std::move(file), BaseQuant::none)->forward(prompt(vocab), nullptr);  // [2, 7, vocab]
}

TEST(HfCheckpoint, TinyLlamaShardsGiveTheGgufLogits) {
  const std::string scratch = test::scratch_dir("hf_tiny_llama");
  const TinyModel m = tiny_model(scratch);
  const std::string dir = hf_dir(scratch);
  test::write_hf_layout(dir, m.config, m.weights);
  ASSERT_TRUE(convert::is_hf_checkpoint(dir));

  const auto converted = convert::open_hf_checkpoint(dir, vocab_from(m.gguf_path));
  const auto original = gguf::File::open(m.gguf_path);
  EXPECT_LE(max_abs_diff(logits_of(converted, m.config.vocab_size), logits_of(original, m.config.vocab_size)),
            kTolerance);
  // Same model for the federation, whichever way a site loads it.
  EXPECT_EQ(load_llama(converted, BaseQuant::none)->base_fingerprint(),
            load_llama(original, BaseQuant::none)->base_fingerprint());
  EXPECT_EQ(Tokenizer::from_gguf(*converted).encode("the patient rests", true),
            Tokenizer::from_gguf(*original).encode("the patient rests", true));
}

TEST(HfCheckpoint, Bf16ShardGivesTheRoundedModelsLogits) {
  const std::string scratch = test::scratch_dir("hf_tiny_bf16");
  const TinyModel m = tiny_model(scratch);
  const std::string dir = hf_dir(scratch);
  test::HfLayoutOptions options;
  options.second_shard_dtype = at::kBFloat16;
  const LlamaWeights stored = test::write_hf_layout(dir, m.config, m.weights, options);
  const std::string reference = scratch + "/rounded.gguf";
  write_llama_gguf(reference, m.config, stored, &m.vocab);

  const gguf::Writer writer = convert::hf_to_gguf(dir, vocab_from(m.gguf_path));
  const auto converted = gguf::File::from_bytes("converted", writer.to_bytes());
  EXPECT_EQ(converted->tensor("blk.2.ffn_up.weight").type, gguf::TensorType::BF16);  // kept as stored
  EXPECT_EQ(converted->tensor("output_norm.weight").type, gguf::TensorType::F32);    // norms widened
  EXPECT_EQ(converted->tensor("blk.0.ffn_up.weight").type, gguf::TensorType::F32);
  EXPECT_LE(max_abs_diff(logits_of(converted, m.config.vocab_size),
                         logits_of(gguf::File::open(reference), m.config.vocab_size)),
            kTolerance);
}

TEST(HfCheckpoint, Qwen2WithBiasesAndTiedOutputGivesTheGgufLogits) {
  const std::string scratch = test::scratch_dir("hf_tiny_qwen2");
  LlamaConfig c = test::tiny_config();
  c.architecture = "qwen2";
  c.qkv_bias = true;
  c.tied_output = true;
  c.rope_base = 1000000.0;
  const TinyModel m = tiny_model(scratch, c);
  const std::string dir = hf_dir(scratch);
  test::HfLayoutOptions options;
  options.write_lm_head_when_tied = true;  // some checkpoints carry the copy; it is skipped
  test::write_hf_layout(dir, m.config, m.weights, options);

  const auto converted = convert::open_hf_checkpoint(dir, vocab_from(m.gguf_path));
  EXPECT_EQ(converted->get_string("general.architecture", ""), "qwen2");
  EXPECT_EQ(converted->find_tensor("output.weight"), nullptr);
  EXPECT_NE(converted->find_tensor("blk.1.attn_k.bias"), nullptr);
  EXPECT_LE(max_abs_diff(logits_of(converted, m.config.vocab_size),
                         logits_of(gguf::File::open(m.gguf_path), m.config.vocab_size)),
            kTolerance);
}

TEST(HfCheckpoint, Stories260KGivesTheGgufLogits) {
  CLEAVE_REQUIRE_SHARED(model_path, "models/stories260K.gguf");
  const std::string scratch = test::scratch_dir("hf_stories");
  const auto original = gguf::File::open(model_path);
  const LlamaConfig c = config_from_gguf(*original);
  const std::string dir = hf_dir(scratch);
  test::HfLayoutOptions options;
  options.second_shard_dtype = at::kHalf;
  const LlamaWeights stored = test::write_hf_layout(dir, c, test::read_gguf_weights(*original), options);
  const Vocabulary vocab = Tokenizer::from_gguf(*original).vocab();
  const std::string reference = scratch + "/rounded.gguf";
  write_llama_gguf(reference, c, stored, &vocab);

  const auto converted = convert::open_hf_checkpoint(dir, vocab_from(model_path));
  EXPECT_LE(
      max_abs_diff(logits_of(converted, c.vocab_size), logits_of(gguf::File::open(reference), c.vocab_size)),
      kTolerance);
  // Half of it was rounded to F16: another base for the federation than the
  // float32 original, although of the same shape.
  EXPECT_NE(load_llama(converted, BaseQuant::none)->base_fingerprint(),
            load_llama(original, BaseQuant::none)->base_fingerprint());
  EXPECT_EQ(Tokenizer::from_gguf(*converted).encode("Once upon a time", true),
            (std::vector<TokenId>{1, 403, 407, 261, 378}));
}

// ---------------------------------------------------------------- bad input

struct BadCheckpoint : ::testing::Test {
  std::string scratch, dir;
  TinyModel m;
  void SetUp() override {
    scratch = test::scratch_dir(std::string("hf_bad_") +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    m = tiny_model(scratch);
    dir = hf_dir(scratch);
    test::write_hf_layout(dir, m.config, m.weights);
  }
  std::string convert_error() const {
    return error_of([&] { convert::hf_to_gguf(dir, vocab_from(m.gguf_path)); });
  }
  void rewrite(const std::string& file, const std::string& from, const std::string& to) const {
    std::ifstream in(dir + "/" + file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    std::ofstream(dir + "/" + file) << text;
  }
};

TEST_F(BadCheckpoint, MissingShard) {
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  const std::string error = convert_error();
  EXPECT_CONTAINS(error,
                  dir + "/model.safetensors.index.json: weight_map names model-00002-of-00002.safetensors");
}

TEST_F(BadCheckpoint, UnknownTensorName) {
  const at::Tensor extra = at::zeros({4}, at::kFloat);
  safetensors::write(dir + "/model-00002-of-00002.safetensors",
                     {{"model.layers.0.self_attn.q_norm.weight", "F32", {4}, extra.data_ptr(), 16}}, {});
  rewrite(
      "model.safetensors.index.json", "\"weight_map\": {",
      "\"weight_map\": {\"model.layers.0.self_attn.q_norm.weight\": \"model-00002-of-00002.safetensors\", ");
  const std::string error = convert_error();
  EXPECT_CONTAINS(error,
                  "model-00002-of-00002.safetensors: tensor model.layers.0.self_attn.q_norm.weight is not "
                  "one cleave maps");
}

TEST_F(BadCheckpoint, HiddenSizeDisagreesWithTheTensors) {
  rewrite("config.json", "\"hidden_size\": 32", "\"hidden_size\": 40");
  const std::string error = convert_error();
  EXPECT_CONTAINS(error, "has shape [");
  EXPECT_CONTAINS(error, dir + "/config.json (");
  EXPECT_CONTAINS(error, "hidden_size 40");
}

TEST_F(BadCheckpoint, MissingConfig) {
  fs::remove(dir + "/config.json");
  EXPECT_FALSE(convert::is_hf_checkpoint(dir));
  EXPECT_CONTAINS(convert_error(), dir + ": no config.json");
}

TEST_F(BadCheckpoint, UnsupportedArchitecture) {
  rewrite("config.json", "LlamaForCausalLM", "GemmaForCausalLM");
  EXPECT_CONTAINS(convert_error(), dir + "/config.json: architectures is 'GemmaForCausalLM'");
}

TEST_F(BadCheckpoint, RopeScalingIsRefused) {
  rewrite("config.json", "\"rope_scaling\": null",
          "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}");
  EXPECT_CONTAINS(convert_error(), dir + "/config.json: rope_scaling is set");
}

TEST_F(BadCheckpoint, MissingLayer) {
  rewrite("config.json", "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 4");
  EXPECT_CONTAINS(convert_error(), "no tensor model.layers.3.");
}

TEST_F(BadCheckpoint, UnsupportedTokenizerModelType) {
  std::ofstream(dir + "/tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": []}})";
  const std::string error = error_of([&] { convert::hf_to_gguf(dir); });
  EXPECT_CONTAINS(error, dir + "/tokenizer.json: model.type is 'Unigram'");
}

TEST_F(BadCheckpoint, NoTokenizer) {
  EXPECT_CONTAINS(error_of([&] { convert::hf_to_gguf(dir); }), dir + ": no tokenizer.json; give --vocab");
}

// ---------------------------------------------------------------- tokenizer.json

// Llama 3's tokenizer.json becomes a `gpt2` vocabulary with llama.cpp's
// `llama-bpe` pre-tokenizer that tokenizes as the tokenizer.json does.
TEST(HfTokenizer, Llama3TokenizerJsonBecomesLlamaBpe) {
  CLEAVE_REQUIRE_SHARED(json_path, "models/vocab/llama3.tokenizer.json");
  CLEAVE_REQUIRE_SHARED(config_path, "models/vocab/llama3.tokenizer_config.json");
  CLEAVE_REQUIRE_SHARED(text_path, "models/vocab/ggml-vocab-llama-bpe.gguf.inp");
  const std::string dir = test::scratch_dir("hf_tokenizer_llama3");
  fs::copy_file(json_path, dir + "/tokenizer.json");
  fs::copy_file(config_path, dir + "/tokenizer_config.json");
  gguf::Writer writer;
  convert::add_tokenizer_json_metadata(writer, dir, 128256);
  const auto file = gguf::File::from_bytes("converted", writer.to_bytes());
  EXPECT_EQ(file->get_string("tokenizer.ggml.model", ""), "gpt2");
  EXPECT_EQ(file->get_string("tokenizer.ggml.pre", ""), "llama-bpe");
  EXPECT_FALSE(file->get_string("tokenizer.chat_template", "").empty());

  std::ifstream in(text_path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const Tokenizer converted = Tokenizer::from_gguf(*file);
  const Tokenizer reference = Tokenizer::from_tokenizer_json(dir + "/tokenizer.json");
  EXPECT_EQ(converted.encode(text, true), reference.encode(text, true));
  EXPECT_EQ(converted.bos(), reference.bos());
  EXPECT_EQ(converted.eos(), reference.eos());
}

// A Llama 2 style tokenizer.json (BPE with byte_fallback, merges in the order
// of the SentencePiece scores, as transformers' converter writes them) of
// stories260K's vocabulary tokenizes as the GGUF's own SentencePiece one.
TEST(HfTokenizer, SentencePieceTokenizerJsonTokenizesAsTheGguf) {
  CLEAVE_REQUIRE_SHARED(model_path, "models/stories260K.gguf");
  const Tokenizer original = Tokenizer::from_gguf(*gguf::File::open(model_path));
  const Vocabulary& v = original.vocab();
  // transformers' SentencePieceExtractor: every split of a piece into two
  // pieces is a merge, ordered by the merged piece's score, then its parts' ids.
  std::map<std::string, int> ids;
  for (size_t i = 0; i < v.tokens.size(); ++i) ids[v.tokens[i]] = static_cast<int>(i);
  struct Merge {
    float score;
    int left, right;
    std::string text;
  };
  std::vector<Merge> merges;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.kinds[i] != TokenKind::NORMAL) continue;
    const std::string& piece = v.tokens[i];
    for (size_t cut = 1; cut < piece.size(); ++cut) {
      const auto l = ids.find(piece.substr(0, cut)), r = ids.find(piece.substr(cut));
      if (l != ids.end() && r != ids.end())
        merges.push_back({v.scores[i], l->second, r->second, l->first + " " + r->first});
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    return a.score != b.score ? a.score > b.score
                              : std::make_pair(a.left, a.right) < std::make_pair(b.left, b.right);
  });
  json::Value vocab_json = json::Value::object();
  json::Value added = json::Value::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.kinds[i] == TokenKind::CONTROL) {
      json::Value entry = json::Value::object();
      entry.set("id", static_cast<int64_t>(i));
      entry.set("content", v.tokens[i]);
      entry.set("special", true);
      added.push_back(entry);
    }
    vocab_json.set(v.tokens[i], static_cast<int64_t>(i));
  }
  json::Value merge_list = json::Value::array();
  for (const Merge& m : merges) merge_list.push_back(m.text);
  json::Value model = json::Value::object();
  model.set("type", "BPE");
  model.set("unk_token", "<unk>");
  model.set("byte_fallback", true);
  model.set("vocab", vocab_json);
  model.set("merges", merge_list);
  json::Value root = json::Value::object();
  root.set("added_tokens", added);
  root.set("normalizer", json::parse(R"({"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "\u2581"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]})"));
  root.set("pre_tokenizer", nullptr);
  root.set("model", model);
  const std::string dir = test::scratch_dir("hf_tokenizer_spm");
  std::ofstream(dir + "/tokenizer.json") << root.dump();

  gguf::Writer writer;
  convert::add_tokenizer_json_metadata(writer, dir, static_cast<int64_t>(v.tokens.size()));
  const auto file = gguf::File::from_bytes("converted", writer.to_bytes());
  EXPECT_EQ(file->get_string("tokenizer.ggml.model", ""), "llama");
  const Tokenizer converted = Tokenizer::from_gguf(*file);
  EXPECT_EQ(converted.vocab().kinds, v.kinds);
  for (const std::string text : {"Once upon a time", "Lily and Ben went to the park. They saw a big dog!",
                                 "  spaces\tand\nnewlines 123 \xc3\xa9t\xc3\xa9"}) {
    EXPECT_EQ(converted.encode(text, true), original.encode(text, true)) << text;
  }
}

}  // namespace
}  // namespace cleave
