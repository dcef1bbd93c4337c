#include "lora/adapter_set.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "lora/merge.h"
#include "model/loss.h"
#include "model/model_loader.h"
#include "tests/support/tiny_model.h"

namespace cleave::lora {
namespace {

at::Tensor sample_tokens(int64_t vocab, int64_t batch, int64_t len, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(vocab, {batch, len}, gen, at::kLong);
}

// Gives every B a non-zero value so adapters change the output.
void randomize_b(AdapterSet& set, uint64_t seed) {
  at::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& [name, pair] : set.pairs()) pair.b.normal_(0.0, 0.1, gen);
}

TEST(AdapterSet, CreatesPairsForTargetsAndLayersWithPeftInit) {
  auto model = load_llama(test::write_tiny_model("lora_create"), BaseQuant::none);
  LoraOptions options;
  options.rank = 4;
  options.targets = {"q", "down"};
  options.layers = {0, 2};
  AdapterSet set = AdapterSet::create(*model, options, 1);
  ASSERT_EQ(set.pairs().size(), 4u);
  const LoraPair& q = set.pairs().at("blk.0.attn_q.weight");
  EXPECT_EQ(q.a.sizes(), (std::vector<int64_t>{4, 32}));
  EXPECT_EQ(q.b.sizes(), (std::vector<int64_t>{32, 4}));
  EXPECT_TRUE(q.a.requires_grad());
  EXPECT_EQ(q.b.abs().sum().item<float>(), 0.0f);
  EXPECT_LE(q.a.abs().max().item<double>(), 1.0 / std::sqrt(32.0));
  EXPECT_GT(q.a.abs().max().item<double>(), 0.5 / std::sqrt(32.0));
  EXPECT_TRUE(set.pairs().count("blk.2.ffn_down.weight"));
  EXPECT_FALSE(set.pairs().count("blk.1.attn_q.weight"));
  EXPECT_DOUBLE_EQ(set.scale(), 16.0 / 4.0);
}

TEST(AdapterSet, ZeroBLeavesLogitsUnchanged) {
  auto model = load_llama(test::write_tiny_model("lora_zero_b"), BaseQuant::none);
  AdapterSet set = AdapterSet::create(*model, LoraOptions{}, 3);
  at::NoGradGuard no_grad;
  at::Tensor tokens = sample_tokens(64, 2, 10, 4);
  EXPECT_TRUE(at::equal(model->forward(tokens, nullptr), model->forward(tokens, &set)));
  randomize_b(set, 5);
  EXPECT_FALSE(at::allclose(model->forward(tokens, nullptr), model->forward(tokens, &set)));
}

TEST(AdapterSet, MergedForwardEqualsUnmergedAndUnmergeRestoresTheBase) {
  auto model = load_llama(test::write_tiny_model("lora_merge"), BaseQuant::none);
  AdapterSet set = AdapterSet::create(*model, LoraOptions{}, 6);
  randomize_b(set, 7);
  at::NoGradGuard no_grad;
  at::Tensor tokens = sample_tokens(64, 2, 12, 8);
  at::Tensor base = model->forward(tokens, nullptr);
  at::Tensor adapted = model->forward(tokens, &set);
  merge(*model, set);
  EXPECT_TRUE(at::allclose(model->forward(tokens, nullptr), adapted, 1e-4, 1e-5));
  unmerge(*model, set);
  EXPECT_TRUE(at::allclose(model->forward(tokens, nullptr), base, 1e-4, 1e-5));
}

// add_delta's one addmm against the textbook form y + (x A^T * scale) B^T.
TEST(AdapterSet, AddDeltaIsYPlusDeltaWithTheSameGradients) {
  auto model = load_llama(test::write_tiny_model("lora_add_delta"), BaseQuant::none);
  LoraOptions options;
  options.rank = 4;
  options.targets = {"q"};
  AdapterSet set = AdapterSet::create(*model, options, 1);
  randomize_b(set, 2);
  const std::string name = "blk.0.attn_q.weight";
  const LoraPair& pair = set.pairs().at(name);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor x0 = at::randn({2, 5, 32}, gen), y0 = at::randn({2, 5, 32}, gen);
  const at::Tensor upstream = at::randn({2, 5, 32}, gen);
  auto run = [&](bool fused) {
    for (const at::Tensor& p : set.parameters()) p.mutable_grad() = at::Tensor();
    at::Tensor x = x0.clone().requires_grad_(true), y = y0.clone().requires_grad_(true);
    at::Tensor out = fused ? set.add_delta(name, x, y)
                           : y + at::matmul(at::matmul(x, pair.a.t()) * set.scale(), pair.b.t());
    (out * upstream).sum().backward();
    return std::vector<at::Tensor>{out.detach(), x.grad(), y.grad(), pair.a.grad().clone(), pair.b.grad().clone()};
  };
  const std::vector<at::Tensor> fused = run(true), separate = run(false);
  EXPECT_EQ(fused[0].sizes(), y0.sizes());
  for (size_t i = 0; i < fused.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_TRUE(at::allclose(fused[i], separate[i], 1e-5, 1e-6));
  }
  // A projection without an adapter passes y through.
  EXPECT_TRUE(set.add_delta("blk.0.attn_k.weight", x0, y0).is_same(y0));
}

TEST(AdapterSet, MergeIntoQuantizedBaseIsRefused) {
  auto model = load_llama(test::write_tiny_model("lora_merge_q"), BaseQuant::int8);
  AdapterSet set = AdapterSet::create(*model, LoraOptions{}, 6);
  EXPECT_THROW(merge(*model, set), std::runtime_error);
}

// Adapter gradients of the float32 model against a float64 finite difference.
TEST(AdapterSet, GradientsMatchFiniteDifferencesInFloat64) {
  auto model = load_llama(test::write_tiny_model("lora_grad"), BaseQuant::none);
  LoraOptions options;
  options.rank = 2;
  AdapterSet set = AdapterSet::create(*model, options, 9);
  randomize_b(set, 10);
  at::Tensor tokens = sample_tokens(64, 2, 6, 11);
  at::Tensor targets = sample_tokens(64, 2, 6, 12);
  at::Tensor weights = at::ones({2, 6});
  cross_entropy(model->forward(tokens, &set), targets, weights).loss.backward();

  // Perturb a few entries of A and B of two projections and compare
  // (L(w + h) - L(w - h)) / 2h with the analytic gradient.
  int checked = 0;
  for (const char* name : {"blk.1.attn_v.weight", "blk.2.ffn_up.weight"}) {
    const LoraPair& pair = set.pairs().at(name);
    for (const at::Tensor* param : {&pair.a, &pair.b}) {
      for (int64_t index : {0L, 3L}) {
        const double h = 1e-3;
        at::Tensor flat = param->detach().view({-1});
        const float original = flat[index].item<float>();
        auto loss_at = [&](float value) {
          at::NoGradGuard no_grad;
          flat[index] = value;
          return cross_entropy(model->forward(tokens, &set), targets, weights).nll_sum / 12.0;
        };
        const double numeric = (loss_at(original + h) - loss_at(original - h)) / (2 * h);
        flat[index] = original;
        const double analytic = param->grad().view({-1})[index].item<double>();
        EXPECT_NEAR(analytic, numeric, 2e-3 * std::max(1.0, std::abs(numeric)))
            << name << " index " << index;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 8);
}

TEST(AdapterSet, FfaAggregationFreezesAWhetherActivationsAreSavedOrRecomputed) {
  auto model = load_llama(test::write_tiny_model("lora_ffa"), BaseQuant::none);
  LoraOptions options;
  options.rank = 2;
  options.aggregation = LoraAggregation::ffa;
  AdapterSet set = AdapterSet::create(*model, options, 9);
  randomize_b(set, 10);
  ASSERT_EQ(set.parameters().size(), set.pairs().size()) << "only B trains";
  for (const at::Tensor& p : set.parameters()) EXPECT_EQ(p.size(1), 2) << "every parameter is a B [out, r]";
  at::Tensor tokens = sample_tokens(64, 2, 6, 11);
  at::Tensor targets = sample_tokens(64, 2, 6, 12);
  at::Tensor weights = at::ones({2, 6});
  for (BlockActivations activations : {BlockActivations::saved, BlockActivations::recomputed}) {
    const LlamaModel& m = *model;
    at::Tensor h = m.run_blocks(m.embed(tokens), 0, m.n_layers(), &set, 0, activations);
    cross_entropy(m.head(h, &set), targets, weights).loss.backward();
    for (const auto& [name, pair] : set.pairs()) {
      EXPECT_FALSE(pair.a.requires_grad()) << name;
      EXPECT_FALSE(pair.a.grad().defined()) << name;
      ASSERT_TRUE(pair.b.grad().defined()) << name;
      pair.b.mutable_grad() = at::Tensor();
    }
  }
  // Switching the options back makes A trainable again (a loader sets them after adding pairs).
  options.aggregation = LoraAggregation::separate;
  set.set_options(options);
  EXPECT_EQ(set.parameters().size(), 2 * set.pairs().size());
  EXPECT_TRUE(set.pairs().begin()->second.a.requires_grad());
}

TEST(AdapterSet, AssignRefusesWrongShapesAndNames) {
  auto model = load_llama(test::write_tiny_model("lora_assign"), BaseQuant::none);
  AdapterSet set = AdapterSet::create(*model, LoraOptions{}, 1);
  NamedTensors named = set.to_named();
  named["blk.0.attn_q.weight.lora_a"] = at::zeros({3, 3});
  EXPECT_THROW(set.assign(named), std::invalid_argument);
  named.erase("blk.0.attn_q.weight.lora_a");
  EXPECT_THROW(set.assign(named), std::invalid_argument);
}

TEST(LoraOptions, ValidationNamesTheField) {
  LoraOptions options;
  options.rank = 0;
  EXPECT_THROW(options.validate(), std::invalid_argument);
  options.rank = 4;
  options.targets = {"q", "mlp"};
  try {
    options.validate();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("mlp"), std::string::npos);
  }
}

}  // namespace
}  // namespace cleave::lora
