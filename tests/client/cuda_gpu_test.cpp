// The model and a LoRA step on a CUDA device against the CPU (label `gpu`:
// skipped with a message where LibTorch has no CUDA or the machine no GPU).
// Tolerances: float32 logits within 1e-4 of the largest logit (GPU matmuls
// sum in a different order; TF32 is off by default in LibTorch for matmuls);
// bf16 as in mixed_precision_test.cpp.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "client/adamw.h"
#include "client/train_step.h"
#include "lora/adapter_set.h"
#include "model/compute.h"
#include "model/model_loader.h"
#include "tests/support/device_fixture.h"
#include "tests/support/shared_data.h"

namespace cleave {
namespace {

constexpr double kFloat32Logits = 1e-4;
constexpr double kBf16Logits = 3e-2;
constexpr double kFloat32Grads = 1e-3;
constexpr double kBf16Grads = 1e-1;  // per tensor, ||diff|| / ||grad||

#define CLEAVE_REQUIRE_CUDA()                                                                   \
  if (!at::hasCUDA()) {                                                                         \
    GTEST_SKIP() << "needs a CUDA device and a LibTorch with CUDA (this build: "                \
                 << (torch_has_cuda() ? "CUDA LibTorch, no device visible" : "CPU LibTorch") \
                 << "); see README, GPU";                                                       \
  }

lora::LoraOptions all_projections() {
  lora::LoraOptions options;
  options.rank = 4;
  options.alpha = 8;
  options.targets = {"q", "k", "v", "o", "gate", "up", "down"};
  return options;
}

TEST(Cuda, Stories260KLogitsMatchTheCpu) {
  CLEAVE_REQUIRE_CUDA();
  const std::string path = test::device::stories260k_or_standin("cuda_logits");
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  for (BaseQuant quant : {BaseQuant::native, BaseQuant::int8, BaseQuant::q4}) {
    SCOPED_TRACE(to_string(quant));
    auto cpu = load_llama(path, quant);
    const at::Tensor tokens = at::randint(1, cpu->config().vocab_size, {2, 64}, gen, at::kLong);
    at::NoGradGuard no_grad;
    const at::Tensor expected = cpu->forward(tokens, nullptr);  // [2, 64, vocab] float32 CPU

    auto cuda32 = load_llama(path, quant);
    cuda32->to(resolve_device("cuda"), at::kFloat);
    const at::Tensor logits32 = cuda32->forward(tokens, nullptr);
    EXPECT_TRUE(logits32.is_cuda());
    EXPECT_LT(test::device::relative_error(logits32, expected), kFloat32Logits);

    auto cuda16 = load_llama(path, quant);
    cuda16->to(resolve_device("cuda"), at::kBFloat16);
    const at::Tensor logits16 = cuda16->forward(tokens, nullptr);
    EXPECT_EQ(logits16.scalar_type(), at::kBFloat16);
    EXPECT_LT(test::device::relative_error(logits16, expected), kBf16Logits);
  }
}

TEST(Cuda, LoraStepGradientsMatchTheCpu) {
  CLEAVE_REQUIRE_CUDA();
  const std::string path = test::device::stories260k_or_standin("cuda_lora_step");
  std::shared_ptr<LlamaModel> cpu = load_llama(path, BaseQuant::int8);
  lora::AdapterSet cpu_adapters = lora::AdapterSet::create(*cpu, all_projections(), 7);
  test::device::randomize_b(cpu_adapters, 8);
  const data::Batch batch = test::device::random_batch(cpu->config().vocab_size, 2, 48, 9);
  LocalTrainStep cpu_step(cpu, cpu_adapters);
  const double cpu_loss = cpu_step.forward_backward(batch, StepContext{}).loss;

  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    std::shared_ptr<LlamaModel> gpu = load_llama(path, BaseQuant::int8);
    gpu->to(resolve_device("cuda"), dtype);
    lora::AdapterSet gpu_adapters = cpu_adapters.clone();
    gpu_adapters.to(gpu->device());
    LocalTrainStep gpu_step(gpu, gpu_adapters);
    const double gpu_loss = gpu_step.forward_backward(batch, StepContext{}).loss;
    const double tolerance = dtype == at::kFloat ? kFloat32Grads : kBf16Grads;
    EXPECT_NEAR(gpu_loss, cpu_loss, tolerance * std::abs(cpu_loss));
    for (const auto& [name, pair] : gpu_adapters.pairs()) {
      const lora::LoraPair& ref = cpu_adapters.pairs().at(name);
      ASSERT_TRUE(pair.a.is_cuda() && pair.a.grad().is_cuda()) << name;
      EXPECT_EQ(pair.a.grad().scalar_type(), at::kFloat) << name;
      EXPECT_LT(test::device::relative_norm_error(pair.a.grad(), ref.a.grad()), tolerance) << name;
      EXPECT_LT(test::device::relative_norm_error(pair.b.grad(), ref.b.grad()), tolerance) << name;
    }
    // The optimizer state lives on the GPU in float32; state() hands out CPU copies.
    AdamW optimizer(gpu_adapters.parameters(), AdamWOptions{});
    optimizer.step(1e-3);
    for (const auto& [key, value] : optimizer.state()) {
      EXPECT_TRUE(value.device().is_cpu()) << key;
    }
    EXPECT_TRUE(gpu_adapters.parameters().front().is_cuda());
    EXPECT_TRUE(gpu_adapters.to_named().begin()->second.device().is_cpu());
  }
}

}  // namespace
}  // namespace cleave
