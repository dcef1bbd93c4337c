// Blocks run with recomputed activations against blocks that keep them: the
// same output, loss, input gradient and adapter gradients (tolerance 1e-5
// relative), with adapter dropout replayed, with and without a gradient on
// the blocks' input, and for a range of blocks in the middle (a split cut).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/function.h>

#include "model/llama_model.h"
#include "model/model_loader.h"
#include "model/recompute.h"
#include "tests/support/test_adapters.h"
#include "tests/support/tiny_model.h"

namespace cleave {
namespace {

double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  const double scale = std::max(expected.abs().max().item<double>(), 1e-30);
  return (actual - expected).abs().max().item<double>() / scale;
}

struct StepGrads {
  double loss = 0;
  at::Tensor input_grad;               // undefined when the input needs none
  std::vector<at::Tensor> adapter_grads;
};

class RecomputeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = load_llama(test::write_tiny_model("recompute_" + std::string(::testing::UnitTest::GetInstance()
                                                                           ->current_test_info()
                                                                           ->name())),
                        BaseQuant::q4);
  }

  // Blocks [begin, end) then the loss on `hidden` (or embeddings when undefined).
  StepGrads step(test::TestAdapters& adapters, BlockActivations activations, int64_t begin, int64_t end,
                 bool input_needs_grad) {
    at::manual_seed(123);  // the same dropout masks for both runs
    adapters.zero_grad();
    at::Tensor tokens = at::randint(model_->config().vocab_size, {2, 9},
                                    at::make_generator<at::CPUGeneratorImpl>(5), at::kLong);
    at::Tensor h = begin == 0 ? model_->embed(tokens)
                              : at::randn({2, 9, model_->config().dim}, at::make_generator<at::CPUGeneratorImpl>(6));
    if (input_needs_grad) h = h.detach().requires_grad_();
    at::Tensor out = model_->run_blocks(h, begin, end, &adapters, 0, activations);
    at::Tensor targets = at::roll(tokens, -1, 1);
    at::Tensor weights = at::ones({2, 9});
    LossResult loss = model_->head_loss(out, targets, weights, &adapters);
    loss.loss.backward();
    StepGrads g;
    g.loss = loss.loss.item<double>();
    if (input_needs_grad) g.input_grad = h.grad();
    for (const at::Tensor& p : adapters.parameters()) g.adapter_grads.push_back(p.grad());
    return g;
  }

  void expect_same_gradients(double dropout, int64_t begin, int64_t end, bool input_needs_grad) {
    // every projection but the output, so the loss takes the chunked path
    std::vector<const FrozenLinear*> linears = model_->linears();
    linears.pop_back();
    test::TestAdapters adapters(linears, 4, 77, dropout);
    const StepGrads saved = step(adapters, BlockActivations::saved, begin, end, input_needs_grad);
    const StepGrads recomputed = step(adapters, BlockActivations::recomputed, begin, end, input_needs_grad);
    EXPECT_NEAR(recomputed.loss, saved.loss, 1e-6 * std::abs(saved.loss));
    if (input_needs_grad) {
      ASSERT_TRUE(recomputed.input_grad.defined());
      EXPECT_LE(relative_error(recomputed.input_grad, saved.input_grad), 1e-5);
    }
    ASSERT_EQ(recomputed.adapter_grads.size(), saved.adapter_grads.size());
    int64_t with_grad = 0;
    for (size_t i = 0; i < saved.adapter_grads.size(); ++i) {
      ASSERT_EQ(recomputed.adapter_grads[i].defined(), saved.adapter_grads[i].defined()) << i;
      if (!saved.adapter_grads[i].defined()) continue;
      ++with_grad;
      EXPECT_LE(relative_error(recomputed.adapter_grads[i], saved.adapter_grads[i]), 1e-5) << i;
    }
    // every adapter of the blocks run: 7 projections, A and B
    EXPECT_EQ(with_grad, (end - begin) * 14);
  }

  std::shared_ptr<LlamaModel> model_;
};

TEST_F(RecomputeTest, AllBlocksFromEmbeddingsGiveTheSameAdapterGradients) {
  expect_same_gradients(0.0, 0, 3, false);
}

TEST_F(RecomputeTest, DropoutMasksAreReplayedInTheBackwardPass) {
  expect_same_gradients(0.3, 0, 3, false);
}

TEST_F(RecomputeTest, MiddleBlocksGiveTheSameInputGradient) {
  expect_same_gradients(0.1, 1, 3, true);
}

TEST_F(RecomputeTest, RecomputedForwardMatchesAndKeepsNoGraphInside) {
  test::TestAdapters adapters(model_->linears(), 4, 78);
  at::Tensor h = at::randn({2, 5, model_->config().dim}, at::make_generator<at::CPUGeneratorImpl>(8));
  const at::Tensor saved = model_->run_blocks(h, 0, 3, &adapters, 0, BlockActivations::saved);
  const at::Tensor recomputed = model_->run_blocks(h, 0, 3, &adapters, 0, BlockActivations::recomputed);
  EXPECT_LE(relative_error(recomputed, saved), 1e-6);
  ASSERT_TRUE(recomputed.grad_fn());
  EXPECT_NE(recomputed.grad_fn()->name().find("RecomputedPiece"), std::string::npos)
      << recomputed.grad_fn()->name();
}

TEST(RunRecomputed, WithoutAnythingToDifferentiateIsAPlainCall) {
  const at::Tensor x = at::randn({3, 4});
  const at::Tensor frozen = at::randn({4, 4});
  const at::Tensor y = run_recomputed([&](const at::Tensor& in) { return at::mm(in, frozen); }, x, {frozen});
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(at::equal(y, at::mm(x, frozen)));
}

TEST(RunRecomputed, ParametersThatNeedNoGradientGetNone) {
  at::Tensor x = at::randn({3, 4}).requires_grad_();
  const at::Tensor frozen = at::randn({4, 4});
  at::Tensor trained = at::randn({4, 4}).requires_grad_();
  auto piece = [&](const at::Tensor& in) { return at::tanh(at::mm(at::mm(in, frozen), trained)); };
  run_recomputed(piece, x, {frozen, trained}).sum().backward();
  const at::Tensor x_grad = x.grad().clone(), trained_grad = trained.grad().clone();
  x.mutable_grad() = at::Tensor();
  trained.mutable_grad() = at::Tensor();
  piece(x).sum().backward();
  EXPECT_FALSE(frozen.grad().defined());
  EXPECT_LE(relative_error(x_grad, x.grad()), 1e-6);
  EXPECT_LE(relative_error(trained_grad, trained.grad()), 1e-6);
}

}  // namespace
}  // namespace cleave
