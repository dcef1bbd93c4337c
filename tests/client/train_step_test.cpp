// LocalTrainStep (chunked head loss, optionally recomputed blocks) against
// the plain step written out here (full logits, saved activations): the same
// loss and adapter gradients, tolerance 1e-5 relative, with LoRA dropout on.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "client/train_step.h"
#include "lora/adapter_set.h"
#include "model/llama_model.h"
#include "model/loss.h"
#include "model/model_loader.h"
#include "tests/support/device_fixture.h"
#include "tests/support/tiny_model.h"

namespace cleave {
namespace {

struct Grads {
  double loss = 0;
  std::vector<at::Tensor> grads;
};

data::Batch batch_for(int64_t vocab) {
  at::Tensor ids = at::randint(vocab, {2 * 12 + 1}, at::make_generator<at::CPUGeneratorImpl>(3), at::kInt);
  const int32_t* p = ids.data_ptr<int32_t>();
  data::Batch batch;
  batch.batch_size = 2;
  batch.seq_len = 12;
  batch.inputs.assign(p, p + 24);
  batch.targets.assign(p + 1, p + 25);
  batch.weights.assign(24, 1.0f);
  for (int i = 0; i < 5; ++i) batch.weights[i] = 0.0f;  // an unscored prompt
  batch.n_target_tokens = 19;
  return batch;
}

lora::AdapterSet trained_adapters(const LlamaModel& model) {
  lora::LoraOptions options;
  options.rank = 4;
  options.dropout = 0.2;
  lora::AdapterSet adapters = lora::AdapterSet::create(model, options, 11);
  at::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(12);
  for (const auto& [name, pair] : adapters.pairs()) pair.b.normal_(0.0, 0.1, gen);  // B != 0
  adapters.set_training(true);
  return adapters;
}

Grads collect(double loss, const lora::AdapterSet& adapters) {
  Grads g;
  g.loss = loss;
  for (const at::Tensor& p : adapters.parameters()) g.grads.push_back(p.grad().clone());
  return g;
}

void expect_same(const Grads& actual, const Grads& expected) {
  EXPECT_NEAR(actual.loss, expected.loss, 1e-5 * std::abs(expected.loss));
  ASSERT_EQ(actual.grads.size(), expected.grads.size());
  for (size_t i = 0; i < expected.grads.size(); ++i) {
    const double scale = std::max(expected.grads[i].abs().max().item<double>(), 1e-30);
    EXPECT_LE((actual.grads[i] - expected.grads[i]).abs().max().item<double>() / scale, 1e-5) << i;
  }
}

TEST(LocalTrainStep, MatchesThePlainStepWithAndWithoutRecomputation) {
  for (BaseQuant quant : {BaseQuant::none, BaseQuant::q4}) {
    SCOPED_TRACE(to_string(quant));
    std::shared_ptr<LlamaModel> model = load_llama(test::write_tiny_model("train_step_local"), quant);
    const data::Batch batch = batch_for(model->config().vocab_size);

    lora::AdapterSet plain_adapters = trained_adapters(*model);
    at::manual_seed(5);
    const BatchTensors t = to_tensors(batch);
    LossResult plain = cross_entropy(model->forward(t.inputs, &plain_adapters), t.targets, t.weights);
    plain.loss.backward();
    const Grads expected = collect(plain.loss.item<double>(), plain_adapters);

    for (bool recompute : {false, true}) {
      SCOPED_TRACE(recompute ? "recomputed" : "saved");
      lora::AdapterSet adapters = trained_adapters(*model);
      LocalTrainStep step(model, adapters, recompute);
      at::manual_seed(5);  // the same dropout masks
      const StepResult r = step.forward_backward(batch, StepContext{});
      EXPECT_EQ(r.n_scored, 19);
      expect_same(collect(r.loss, adapters), expected);
    }
  }
}

// Micro-batches accumulate the gradient of the whole batch's mean loss. The
// batch has rows with different numbers of scored targets (one none at all),
// so an unweighted sum of micro-batch means would not match. No dropout: the masks of
// a row depend on how many rows were drawn before it.
TEST(LocalTrainStep, MicroBatchesGiveTheWholeBatchStep) {
  std::shared_ptr<LlamaModel> model = load_llama(test::write_tiny_model("train_step_micro"), BaseQuant::q4);
  const int64_t rows = 5, seq = 12;
  data::Batch batch = test::device::random_batch(model->config().vocab_size, rows, seq, 4);
  for (int i = 0; i < 9; ++i) batch.weights[i] = 0.0f;              // row 0: 3 scored
  for (int i = 2 * seq; i < 3 * seq; ++i) batch.weights[i] = 0.0f;  // row 2: none
  batch.weights[4 * seq + 7] = 0.0f;                                // row 4: 10 scored
  batch.n_target_tokens = std::count(batch.weights.begin(), batch.weights.end(), 1.0f);
  ASSERT_EQ(batch.n_target_tokens, 3 + 11 + 0 + 11 + 10);

  auto run = [&](int64_t micro_batch, bool recompute) {
    lora::AdapterSet adapters = trained_adapters(*model);
    adapters.set_training(false);  // no dropout
    LocalTrainStep step(model, adapters, recompute, micro_batch);
    const StepResult r = step.forward_backward(batch, StepContext{});
    EXPECT_EQ(r.n_scored, batch.n_target_tokens);
    return collect(r.loss, adapters);
  };
  const Grads whole = run(0, false);
  for (int64_t micro_batch : {1, 2, 3, 5, 9}) {
    for (bool recompute : {false, true}) {
      SCOPED_TRACE("micro_batch " + std::to_string(micro_batch) + (recompute ? ", recomputed" : ""));
      expect_same(run(micro_batch, recompute), whole);
    }
  }
}

TEST(LocalTrainStep, RefusesANegativeMicroBatch) {
  std::shared_ptr<LlamaModel> model = load_llama(test::write_tiny_model("train_step_micro_bad"), BaseQuant::none);
  lora::AdapterSet adapters = trained_adapters(*model);
  try {
    LocalTrainStep step(model, adapters, false, -1);
    FAIL() << "a negative micro-batch was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("train.micro_batch"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cleave
