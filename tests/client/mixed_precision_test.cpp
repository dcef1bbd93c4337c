// Mixed precision on the CPU: the frozen base in bf16 (LibTorch's CPU has
// bf16 kernels), LoRA master weights, gradients and AdamW state in float32,
// compared with the all-float32 model. The tolerances are for bf16's 8-bit
// significand (relative rounding 2^-9 per value) accumulated over the
// stories260K blocks.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <iostream>

#include "client/adamw.h"
#include "client/train_step.h"
#include "lora/adapter_set.h"
#include "model/frozen_weight.h"
#include "model/model_loader.h"
#include "tests/support/device_fixture.h"
#include "tests/support/shared_data.h"

namespace cleave {
namespace {

using test::device::relative_error;
using test::device::relative_norm_error;

// Logits of the bf16 model vs the float32 one: max |diff| / max |logit|.
constexpr double kLogitsTolerance = 3e-2;
// LoRA gradients of a bf16 step vs a float32 step, per tensor: ||diff|| / ||grad||.
constexpr double kGradTolerance = 1e-1;
// ... and over all adapter gradients together.
constexpr double kAllGradsTolerance = 3e-2;

at::Tensor random_tokens(int64_t vocab, int64_t B, int64_t T, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(1, vocab, {B, T}, gen, at::kLong);  // [B, T]
}

lora::LoraOptions all_projections() {
  lora::LoraOptions options;
  options.rank = 4;
  options.alpha = 8;
  options.targets = {"q", "k", "v", "o", "gate", "up", "down"};
  return options;
}

TEST(MixedPrecision, Bf16LogitsMatchFloat32OnStories260K) {
  CLEAVE_REQUIRE_SHARED(path, "models/stories260K.gguf");
  for (BaseQuant quant : {BaseQuant::native, BaseQuant::int8, BaseQuant::q4}) {
    SCOPED_TRACE(to_string(quant));
    auto reference = load_llama(path, quant);
    auto bf16 = load_llama(path, quant);
    bf16->to(at::kCPU, at::kBFloat16);
    EXPECT_EQ(bf16->compute_dtype(), at::kBFloat16);
    const at::Tensor tokens = random_tokens(reference->config().vocab_size, 2, 48, 3);
    at::NoGradGuard no_grad;
    const at::Tensor expected = reference->forward(tokens, nullptr);  // [2, 48, vocab]
    const at::Tensor logits = bf16->forward(tokens, nullptr);
    ASSERT_EQ(logits.scalar_type(), at::kBFloat16);
    const double error = relative_error(logits.to(at::kFloat), expected);
    std::cout << "[ measured ] " << to_string(quant) << " bf16 logits error " << error << "\n";
    EXPECT_LT(error, kLogitsTolerance);
    // The predicted token mostly agrees (ties within bf16 rounding may flip).
    const double agree = (logits.argmax(-1) == expected.argmax(-1)).to(at::kFloat).mean().item<double>();
    EXPECT_GT(agree, 0.9);
  }
}

TEST(MixedPrecision, Bf16LoraStepGivesFloat32GradientsCloseToFloat32Step) {
  CLEAVE_REQUIRE_SHARED(path, "models/stories260K.gguf");
  std::shared_ptr<LlamaModel> reference = load_llama(path, BaseQuant::native);
  std::shared_ptr<LlamaModel> bf16 = load_llama(path, BaseQuant::native);
  bf16->to(at::kCPU, at::kBFloat16);
  lora::AdapterSet adapters32 = lora::AdapterSet::create(*reference, all_projections(), 11);
  test::device::randomize_b(adapters32, 12);  // B = 0 would leave A's gradient zero
  lora::AdapterSet adapters16 = adapters32.clone();
  const data::Batch batch = test::device::random_batch(reference->config().vocab_size, 2, 32, 13);

  LocalTrainStep step32(reference, adapters32);
  LocalTrainStep step16(bf16, adapters16);
  const double loss32 = step32.forward_backward(batch, StepContext{}).loss;
  const double loss16 = step16.forward_backward(batch, StepContext{}).loss;
  EXPECT_NEAR(loss16, loss32, 2e-2 * std::abs(loss32));

  ASSERT_EQ(adapters16.pairs().size(), adapters32.pairs().size());
  std::vector<at::Tensor> all16, all32;
  double worst = 0;
  for (const auto& [name, pair] : adapters16.pairs()) {
    const lora::LoraPair& ref = adapters32.pairs().at(name);
    for (auto [got, want] : {std::pair{&pair.a, &ref.a}, std::pair{&pair.b, &ref.b}}) {
      ASSERT_TRUE(got->grad().defined()) << name;
      EXPECT_EQ(got->scalar_type(), at::kFloat) << name;         // master weights
      EXPECT_EQ(got->grad().scalar_type(), at::kFloat) << name;  // their gradients
      all16.push_back(got->grad().flatten());
      all32.push_back(want->grad().flatten());
      const double error = relative_norm_error(got->grad(), want->grad());
      worst = std::max(worst, error);
      EXPECT_LT(error, kGradTolerance) << name;
    }
  }
  const double overall = relative_norm_error(at::cat(all16), at::cat(all32));
  EXPECT_LT(overall, kAllGradsTolerance);
  std::cout << "[ measured ] bf16 LoRA gradient error: all " << overall << ", worst tensor " << worst
            << "; loss " << loss16 << " vs " << loss32 << "\n";
}

TEST(MixedPrecision, AdamWStateStaysFloat32WithABf16Base) {
  CLEAVE_REQUIRE_SHARED(path, "models/stories260K.gguf");
  std::shared_ptr<LlamaModel> bf16 = load_llama(path, BaseQuant::int8);
  bf16->to(at::kCPU, at::kBFloat16);
  lora::AdapterSet adapters = lora::AdapterSet::create(*bf16, all_projections(), 21);
  test::device::randomize_b(adapters, 22);
  const std::vector<at::Tensor> before = [&] {
    std::vector<at::Tensor> copies;
    for (const at::Tensor& p : adapters.parameters()) copies.push_back(p.detach().clone());
    return copies;
  }();
  AdamW optimizer(adapters.parameters(), AdamWOptions{});
  LocalTrainStep step(bf16, adapters);
  step.forward_backward(test::device::random_batch(bf16->config().vocab_size, 2, 16, 23), StepContext{});
  optimizer.step(1e-2);
  for (const auto& [key, value] : optimizer.state()) {
    if (key == "step") continue;
    EXPECT_EQ(value.scalar_type(), at::kFloat) << key;
  }
  const std::vector<at::Tensor> after = adapters.parameters();
  bool moved = false;
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].scalar_type(), at::kFloat);
    moved = moved || !at::equal(after[i].detach(), before[i]);
  }
  EXPECT_TRUE(moved) << "AdamW did not update the float32 adapters";
}

// The tensor-op dequantization (used on GPUs and for bf16/fp16) against the
// CPU float32 loops, including a row length that is not a multiple of 32.
TEST(MixedPrecision, QuantizedWeightsDequantizeWithTensorOps) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(31);
  const at::Tensor w = at::randn({40, 70}, gen, at::kFloat);  // [out, in]
  for (BaseQuant quant : {BaseQuant::int8, BaseQuant::q4}) {
    SCOPED_TRACE(to_string(quant));
    const FrozenWeight loops = FrozenWeight::from_float(w, quant);
    FrozenWeight ops = FrozenWeight::from_float(w, quant);
    ops.to(at::kCPU, at::kBFloat16);
    const at::Tensor expected = loops.dequantize();  // [40, 70] float32
    const at::Tensor got = ops.dequantize();
    ASSERT_EQ(got.scalar_type(), at::kBFloat16);
    ASSERT_EQ(got.sizes(), expected.sizes());
    // bf16 rounding of the scale and of the product: 2 x 2^-9 relative
    EXPECT_LT(relative_error(got.to(at::kFloat), expected), 1e-2);
    EXPECT_LT(relative_error(ops.dequantize_rows(5, 10).to(at::kFloat), expected.narrow(0, 5, 10)),
              1e-2);
    const at::Tensor ids = at::tensor(std::vector<int64_t>{39, 0, 7, 7}, at::kLong).view({2, 2});
    const at::Tensor rows = ops.gather_rows(ids);  // [2, 2, 70]
    ASSERT_EQ(rows.sizes(), (std::vector<int64_t>{2, 2, 70}));
    EXPECT_LT(relative_error(rows.to(at::kFloat), at::embedding(expected, ids)), 1e-2);
    EXPECT_EQ(ops.describe(), loops.describe());
  }
}

TEST(MixedPrecision, FloatWeightsAreStoredInTheComputeDtype) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(41);
  FrozenWeight weight = FrozenWeight::from_float(at::randn({8, 16}, gen, at::kFloat), BaseQuant::none);
  const int64_t float_bytes = weight.bytes();
  weight.to(at::kCPU, at::kBFloat16);
  EXPECT_EQ(weight.dequantize().scalar_type(), at::kBFloat16);
  EXPECT_EQ(weight.bytes() * 2, float_bytes);
  EXPECT_EQ(weight.describe(), "bf16 [8, 16]");
  EXPECT_THROW(weight.to(at::kCPU, at::kInt), std::invalid_argument);
}

}  // namespace
}  // namespace cleave
