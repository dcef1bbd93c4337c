// Generation: greedy decoding against llama.cpp's golden continuation on
// stories260K, and the sampler's determinism, top-k, top-p and temperature.
#include "model/generate.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>

#include "model/gguf.h"
#include "model/model_loader.h"
#include "tests/support/shared_data.h"
#include "tests/support/tiny_model.h"

namespace cleave {
namespace {

const std::vector<TokenId> kGreedy = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426,
                                      338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322,
                                      265, 282, 295, 433, 426, 385, 328, 432, 358, 394};

TEST(Generate, GreedyReproducesLlamaCppOnStories260K) {
  CLEAVE_REQUIRE_SHARED(model_path, "models/stories260K.gguf");
  auto file = gguf::File::open(model_path);
  auto model = load_llama(file, BaseQuant::none);
  const Tokenizer tokenizer = Tokenizer::from_gguf(*file);
  std::vector<TokenId> ids = tokenizer.encode("Once upon a time", true);
  ASSERT_EQ(ids, (std::vector<TokenId>{1, 403, 407, 261, 378}));

  std::vector<TokenId> streamed;
  const std::vector<TokenId> continuation = generate(
      *model, nullptr, ids, tokenizer.eos(), SamplingOptions::greedy(32), [&](TokenId id) { streamed.push_back(id); });
  EXPECT_EQ(continuation, kGreedy);
  EXPECT_EQ(streamed, continuation);
  ids.insert(ids.end(), continuation.begin(), continuation.end());
  EXPECT_EQ(tokenizer.decode(ids),
            "Once upon a time, there was a little girl named Lily. She loved to play outside in "
            "the park. One day, she saw");
}

class GenerateTiny : public ::testing::Test {
 protected:
  void SetUp() override { model_ = load_llama(test::write_tiny_model("generate_tiny"), BaseQuant::none); }
  std::shared_ptr<LlamaModel> model_;
  const std::vector<TokenId> prompt_ = {1, 5, 9, 17};
  static constexpr TokenId kNoEos = -1;
};

TEST_F(GenerateTiny, SeededSamplingIsDeterministic) {
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_k = 0;
  o.top_p = 1.0;
  o.max_new_tokens = 24;
  o.seed = 42;
  const auto first = generate(*model_, nullptr, prompt_, kNoEos, o);
  const auto second = generate(*model_, nullptr, prompt_, kNoEos, o);
  EXPECT_EQ(first.size(), 24u);
  EXPECT_EQ(first, second);
  o.seed = 43;
  EXPECT_NE(generate(*model_, nullptr, prompt_, kNoEos, o), first)
      << "a different seed should give a different sample from a near-uniform model";
}

TEST_F(GenerateTiny, TopKOneIsGreedy) {
  SamplingOptions o;
  o.temperature = 1.5;
  o.top_k = 1;
  o.max_new_tokens = 16;
  o.stop_at_eos = false;
  o.seed = 3;
  EXPECT_EQ(generate(*model_, nullptr, prompt_, kNoEos, o),
            generate(*model_, nullptr, prompt_, kNoEos, SamplingOptions::greedy(16)));
}

TEST_F(GenerateTiny, StopsAtEosAndIncludesIt) {
  const auto run = generate(*model_, nullptr, prompt_, kNoEos, SamplingOptions::greedy(8));
  ASSERT_EQ(run.size(), 8u);
  // Call the first greedy token EOS: generation must stop right after it.
  SamplingOptions o = SamplingOptions::greedy(8);
  o.stop_at_eos = true;
  EXPECT_EQ(generate(*model_, nullptr, prompt_, run[0], o), std::vector<TokenId>{run[0]});
}

TEST_F(GenerateTiny, LongOutputsSlideTheContextWindow) {
  LlamaConfig c = test::tiny_config();
  c.context_length = 8;
  auto small_context = load_llama(test::write_tiny_model("generate_ctx", 7, c), BaseQuant::none);
  const auto out = generate(*small_context, nullptr, prompt_, kNoEos, SamplingOptions::greedy(20));
  EXPECT_EQ(out.size(), 20u);
  // Same weights, longer context: the first tokens (context not yet full) agree.
  const auto reference = generate(*model_, nullptr, prompt_, kNoEos, SamplingOptions::greedy(4));
  EXPECT_EQ(std::vector<TokenId>(out.begin(), out.begin() + 4), reference);
}

TEST_F(GenerateTiny, KvCachedStepsMatchTheFullForward) {
  // The prompt in one pass, then one position at a time: each step's logits
  // equal those of the whole sequence recomputed (the pre-cache generator).
  ModelDecoder decoder(*model_, nullptr);
  std::vector<TokenId> ids = prompt_;
  at::Tensor logits = decoder.feed(ids);
  for (int step = 0; step < 6; ++step) {
    const std::vector<int64_t> all(ids.begin(), ids.end());
    const at::Tensor full = model_->forward(at::tensor(all, at::kLong).unsqueeze(0), nullptr)[0][-1];  // [vocab]
    ASSERT_TRUE(at::allclose(logits, full, 1e-4, 1e-5)) << "step " << step;
    const TokenId next = static_cast<TokenId>(full.argmax().item<int64_t>());
    ids.push_back(next);
    logits = decoder.feed({next});
  }
  decoder.restart();
  EXPECT_TRUE(at::allclose(decoder.feed(prompt_), ModelDecoder(*model_, nullptr).feed(prompt_)));
}

TEST(SampleToken, TemperatureSharpensOrFlattensTheDistribution) {
  const at::Tensor logits = at::tensor({2.0f, 1.0f, 0.0f, -1.0f});
  auto top_share = [&](double temperature) {
    SamplingOptions o;
    o.temperature = temperature;
    o.top_k = 0;
    o.top_p = 1.0;
    std::mt19937_64 rng(5);
    int hits = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) hits += sample_token(logits, o, rng) == 0;
    return static_cast<double>(hits) / n;
  };
  // softmax([2,1,0,-1] / T)[0]: 0.8650 at T = 0.5, 0.6439 at T = 1, 0.4551 at T = 2.
  EXPECT_NEAR(top_share(0.5), 0.8650, 0.015);
  EXPECT_NEAR(top_share(1.0), 0.6439, 0.015);
  EXPECT_NEAR(top_share(2.0), 0.4551, 0.015);
}

TEST(SampleToken, TopPAndTopKRestrictTheCandidates) {
  const at::Tensor logits = at::tensor({0.0f, 2.0f, 1.0f, -1.0f});  // probabilities .087 .644 .237 .032
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_k = 0;
  o.top_p = 0.6;  // the nucleus is token 1 alone
  std::mt19937_64 rng(9);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(sample_token(logits, o, rng), 1);
  o.top_p = 0.85;  // tokens 1 and 2
  o.top_k = 0;
  std::set<TokenId> seen;
  for (int i = 0; i < 400; ++i) seen.insert(sample_token(logits, o, rng));
  EXPECT_EQ(seen, (std::set<TokenId>{1, 2}));
  o.top_p = 1.0;
  o.top_k = 3;
  seen.clear();
  for (int i = 0; i < 2000; ++i) seen.insert(sample_token(logits, o, rng));
  EXPECT_EQ(seen, (std::set<TokenId>{0, 1, 2}));
}

TEST(SampleToken, GreedyTakesTheFirstMaximum) {
  std::mt19937_64 rng(1);
  SamplingOptions o;
  o.temperature = 0;
  EXPECT_EQ(sample_token(at::tensor({1.0f, 3.0f, 3.0f, 2.0f}), o, rng), 1);
}

TEST(SampleToken, InvalidOptionsAreRefused) {
  SamplingOptions o;
  o.temperature = -1;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = SamplingOptions{};
  o.top_p = 0;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = SamplingOptions{};
  o.top_k = -2;
  EXPECT_THROW(o.validate(), std::invalid_argument);
}

}  // namespace
}  // namespace cleave
