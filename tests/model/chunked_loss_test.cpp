// The chunked output projection + cross-entropy against the plain path
// (full logits, then cross_entropy): same NLL sum, loss and gradient with
// respect to the hidden state, for float, int8 and q4 output weights, partial
// chunks, unscored rows, a tied output and an adapted output (which falls
// back to the plain path). Tolerance: 1e-5 relative to the largest value.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "model/frozen_linear.h"
#include "model/llama_model.h"
#include "model/loss.h"
#include "model/model_loader.h"
#include "tests/support/test_adapters.h"
#include "tests/support/tiny_model.h"

namespace cleave {
namespace {

double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  const double scale = std::max(expected.abs().max().item<double>(), 1e-30);
  return (actual - expected).abs().max().item<double>() / scale;
}

struct Outcome {
  LossResult loss;
  at::Tensor grad;  // of the hidden state
};

using LossFn = std::function<LossResult(const at::Tensor& hidden)>;

Outcome run(const at::Tensor& hidden, const LossFn& loss_fn) {
  at::Tensor h = hidden.detach().clone().requires_grad_();
  Outcome o;
  o.loss = loss_fn(h);
  o.loss.loss.backward();
  o.grad = h.grad();
  return o;
}

void expect_same(const Outcome& fused, const Outcome& plain) {
  EXPECT_EQ(fused.loss.n_scored, plain.loss.n_scored);
  EXPECT_NEAR(fused.loss.nll_sum, plain.loss.nll_sum, 1e-5 * std::abs(plain.loss.nll_sum) + 1e-6);
  EXPECT_NEAR(fused.loss.loss.item<double>(), plain.loss.loss.item<double>(),
              1e-5 * std::abs(plain.loss.loss.item<double>()) + 1e-7);
  ASSERT_TRUE(fused.grad.defined());
  EXPECT_LE(relative_error(fused.grad, plain.grad), 1e-5);
}

struct Case {
  int64_t batch = 2, seq = 7, dim = 32, vocab = 53;
  at::Tensor hidden, targets, weights;
};

Case random_case(int64_t vocab, uint64_t seed) {
  Case c;
  c.vocab = vocab;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  c.hidden = at::empty({c.batch, c.seq, c.dim}).normal_(0.0, 1.0, gen);
  c.targets = at::randint(vocab, {c.batch, c.seq}, gen, at::kLong);
  c.weights = at::ones({c.batch, c.seq});
  c.weights.select(1, 0).zero_();   // unscored rows, like a prompt
  c.weights[1][4] = 0.0f;
  c.weights[0][5] = 2.0f;           // any weight > 0 counts as scored (once)
  return c;
}

FrozenLinear output_layer(int64_t vocab, int64_t dim, BaseQuant quant, bool with_bias, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  FrozenLinear l;
  l.name = "output.weight";
  l.weight = FrozenWeight::from_float(at::empty({vocab, dim}).normal_(0.0, 0.3, gen), quant);
  if (with_bias) l.bias = at::empty({vocab}).normal_(0.0, 0.5, gen);
  return l;
}

void compare_on(const Case& c, const FrozenLinear& output, int64_t chunk_rows) {
  const Outcome plain = run(c.hidden, [&](const at::Tensor& h) {
    return cross_entropy(output.forward(h, nullptr), c.targets, c.weights);
  });
  const Outcome fused = run(c.hidden, [&](const at::Tensor& h) {
    return chunked_cross_entropy(h, output, c.targets, c.weights, chunk_rows);
  });
  expect_same(fused, plain);
}

TEST(ChunkedLoss, FloatWeightInPartialChunksMatchesFullLogits) {
  const Case c = random_case(53, 1);
  const FrozenLinear output = output_layer(53, 32, BaseQuant::none, false, 2);
  for (int64_t chunk_rows : {1, 3, 5, 0, 100}) {
    SCOPED_TRACE(chunk_rows);
    compare_on(c, output, chunk_rows);
  }
}

TEST(ChunkedLoss, Int8WeightWithBiasMatchesFullLogits) {
  const Case c = random_case(53, 3);
  compare_on(c, output_layer(53, 32, BaseQuant::int8, true, 4), 4);
}

TEST(ChunkedLoss, Q4WeightOverSeveralVocabularySlicesMatchesFullLogits) {
  // more than one 4096-row slice of the dequantized weight, the last partial
  const Case c = random_case(4100, 5);
  compare_on(c, output_layer(4100, 32, BaseQuant::q4, false, 6), 4);
}

TEST(ChunkedLoss, NoScoredTargetGivesZeroLossAndGradient) {
  Case c = random_case(53, 7);
  c.weights.zero_();
  const FrozenLinear output = output_layer(53, 32, BaseQuant::none, false, 8);
  const Outcome fused = run(c.hidden, [&](const at::Tensor& h) {
    return chunked_cross_entropy(h, output, c.targets, c.weights, 3);
  });
  EXPECT_EQ(fused.loss.n_scored, 0);
  EXPECT_EQ(fused.loss.nll_sum, 0.0);
  EXPECT_EQ(fused.grad.abs().max().item<float>(), 0.0f);
}

TEST(ChunkedLoss, WithoutGradientGivesTheSameLoss) {
  const Case c = random_case(53, 9);
  const FrozenLinear output = output_layer(53, 32, BaseQuant::q4, false, 10);
  const LossResult plain = cross_entropy(output.forward(c.hidden, nullptr), c.targets, c.weights);
  const LossResult fused = chunked_cross_entropy(c.hidden, output, c.targets, c.weights, 4);
  EXPECT_FALSE(fused.loss.requires_grad());
  EXPECT_NEAR(fused.loss.item<double>(), plain.loss.item<double>(), 1e-5 * plain.loss.item<double>());
}

TEST(ChunkedLoss, RejectsHiddenStatesOfTheWrongWidth) {
  const Case c = random_case(53, 11);
  const FrozenLinear output = output_layer(53, 16, BaseQuant::none, false, 12);
  EXPECT_THROW(chunked_cross_entropy(c.hidden, output, c.targets, c.weights), std::invalid_argument);
}

// LlamaModel::head_loss against cross_entropy(head(h)) on a tiny model.
void compare_head_loss(const LlamaModel& model, const LinearAdapters* adapters) {
  Case c = random_case(model.config().vocab_size, 13);
  c.hidden = at::randn({c.batch, c.seq, model.config().dim},
                       at::make_generator<at::CPUGeneratorImpl>(14));
  const Outcome plain = run(c.hidden, [&](const at::Tensor& h) {
    return cross_entropy(model.head(h, adapters), c.targets, c.weights);
  });
  const Outcome fused = run(c.hidden, [&](const at::Tensor& h) {
    return model.head_loss(h, c.targets, c.weights, adapters);
  });
  expect_same(fused, plain);
}

TEST(ChunkedLoss, HeadLossMatchesHeadForTiedAndUntiedOutputs) {
  for (bool tied : {false, true}) {
    LlamaConfig config = test::tiny_config();
    config.tied_output = tied;
    const std::string path = test::write_tiny_model(tied ? "chunked_loss_tied" : "chunked_loss_untied", 7, config);
    for (BaseQuant quant : {BaseQuant::none, BaseQuant::q4}) {
      SCOPED_TRACE(std::string(tied ? "tied " : "untied ") + to_string(quant));
      std::shared_ptr<LlamaModel> model = load_llama(path, quant);
      ASSERT_EQ(model->config().tied_output, tied);
      compare_head_loss(*model, nullptr);
    }
  }
}

TEST(ChunkedLoss, HeadLossWithAnAdaptedOutputMatchesHead) {
  std::shared_ptr<LlamaModel> model = load_llama(test::write_tiny_model("chunked_loss_adapted"), BaseQuant::none);
  const test::TestAdapters adapters({model->linears().back()}, 4, 15);
  ASSERT_TRUE(adapters.adapts("output.weight"));
  compare_head_loss(*model, &adapters);
}

}  // namespace
}  // namespace cleave
