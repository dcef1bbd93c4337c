// Models and rows for the audit tests: the tiny random Llama of
// tests/support, and stories260K with TinyStories text when ../shared has them.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "audit/audit_run.h"
#include "client/dataset.h"
#include "model/gguf.h"
#include "model/llama_model.h"
#include "model/model_loader.h"
#include "model/model_writer.h"
#include "model/tokenizer.h"
#include "tests/support/shared_data.h"
#include "tests/support/tiny_model.h"

namespace cleave::audit::test {

// The tiny random Llama with its block weights scaled up `mixing` times, so
// that the blocks, not the embedding, dominate what reaches the cut (at HF's
// 0.02 init a token's activation is nearly its embedding, whatever came before).
inline std::shared_ptr<LlamaModel> tiny_model(const std::string& test_name, double mixing = 10) {
  const LlamaConfig config = cleave::test::tiny_config();
  LlamaWeights weights = random_llama_weights(config, /*seed=*/7);
  for (auto& [name, tensor] : weights) {
    if (name.rfind("blk.", 0) == 0 && name.find("_norm") == std::string::npos) tensor.mul_(mixing);
  }
  const std::string path = cleave::test::scratch_dir(test_name) + "/tiny-mixing.gguf";
  write_llama_gguf(path, config, weights, nullptr);
  return load_llama(path, BaseQuant::none);
}

// `rows` rows of `length` ids: BOS (1) then uniform ids in [3, vocab), seeded.
inline std::vector<TokenRow> random_rows(int64_t vocab, int64_t rows, int64_t length, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<TokenId> id(3, static_cast<TokenId>(vocab - 1));
  std::vector<TokenRow> out(rows);
  for (TokenRow& row : out) {
    row.push_back(1);
    for (int64_t i = 1; i < length; ++i) row.push_back(id(rng));
  }
  return out;
}

// What the split server receives for `rows` over `channel`.
inline std::vector<at::Tensor> observe(const LlamaModel& model, const LinearAdapters* adapters,
                                       const std::vector<TokenRow>& rows, const SmashedChannel& channel) {
  SiteSender site(channel);
  std::vector<at::Tensor> observed;
  for (const at::Tensor& smashed : bottom_activations(model, adapters, rows, channel.cut_layer)) {
    observed.push_back(site.send(smashed));
  }
  return observed;
}

inline double recovery(const std::vector<TokenRow>& truth, const std::vector<TokenRow>& guess) {
  return static_cast<double>(count_recovered(truth, guess)) / static_cast<double>(count_scored(truth));
}

// The median token L2 norm at the cut: a clip that binds on half the tokens.
inline double median_norm(const LlamaModel& model, const std::vector<TokenRow>& rows, int64_t cut_layer) {
  std::vector<at::Tensor> norms;
  for (const at::Tensor& row : bottom_activations(model, nullptr, rows, cut_layer))
    norms.push_back(row.norm(2, {-1}));
  return at::cat(norms).median().item<double>();
}

struct Stories {
  std::shared_ptr<LlamaModel> model;
  std::shared_ptr<Tokenizer> tokenizer;
  std::vector<data::Example> examples;  // TinyStories, in file order
};

// stories260K and the TinyStories sample, or nullopt (the caller skips).
inline std::optional<Stories> load_stories() {
  const auto model_path = cleave::test::shared_file("models/stories260K.gguf");
  const auto data_path = cleave::test::shared_file("data/tinystories/tinystories_sample.jsonl");
  if (!model_path || !data_path) return std::nullopt;
  const auto file = gguf::File::open(*model_path);
  Stories s;
  s.model = load_llama(file, BaseQuant::none);
  s.tokenizer = std::make_shared<Tokenizer>(Tokenizer::from_gguf(*file));
  s.examples = data::tokenize_records(*s.tokenizer, data::read_records(*data_path));
  return s;
}

}  // namespace cleave::audit::test

#define CLEAVE_REQUIRE_STORIES(var)                                                                   \
  const auto var##_opt = ::cleave::audit::test::load_stories();                                       \
  if (!var##_opt) {                                                                                   \
    GTEST_SKIP() << "needs ../shared/models/stories260K.gguf and "                                    \
                    "../shared/data/tinystories/tinystories_sample.jsonl (set CLEAVE_SHARED to run)"; \
  }                                                                                                   \
  const ::cleave::audit::test::Stories& var = *var##_opt
