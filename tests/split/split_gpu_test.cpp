// A split step with the split server's model on a CUDA device and the client
// on the CPU, over tcp://127.0.0.1, against the unsplit CPU step (label
// `gpu`: skipped with a message without CUDA). The wire carries CPU float32;
// the server moves activations to the GPU and gradients back.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "client/train_step.h"
#include "model/compute.h"
#include "model/model_loader.h"
#include "split/split_client.h"
#include "tests/split/split_fixture.h"
#include "tests/support/device_fixture.h"
#include "transport/zmq_channel.h"

namespace cleave::split {
namespace {

using test::device::relative_error;
using test::device::relative_norm_error;

TEST(SplitGpu, ServerOnCudaClientOnCpuMatchesTheLocalStep) {
  if (!at::hasCUDA()) {
    GTEST_SKIP() << "needs a CUDA device and a LibTorch with CUDA (this build: "
                 << (torch_has_cuda() ? "CUDA LibTorch, no device visible" : "CPU LibTorch")
                 << "); see README, GPU";
  }
  const std::string path = test::device::stories260k_or_standin("split_gpu");
  std::shared_ptr<LlamaModel> cpu = load_llama(path, BaseQuant::int8);
  lora::LoraOptions options;
  options.rank = 4;
  lora::AdapterSet initial = lora::AdapterSet::create(*cpu, options, 3);
  test::randomize_b(initial, 4);
  const data::Batch batch = test::random_batch(cpu->config().vocab_size, 2, 32, 5);
  const int32_t cut = 2;

  lora::AdapterSet local = initial.clone();
  LocalTrainStep local_step(cpu, local);
  const double local_loss = local_step.forward_backward(batch, StepContext{}).loss;

  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const double tolerance = dtype == at::kFloat ? 1e-3 : 1e-1;  // ||diff|| / ||grad||
    std::shared_ptr<LlamaModel> gpu = load_llama(path, BaseQuant::int8);
    gpu->to(resolve_device("cuda"), dtype);
    SplitServerOptions server_options;
    server_options.lora = options;
    auto server = std::make_unique<SplitServer>(
        gpu, server_options, initial.subset([&](int64_t layer) { return layer >= cut; }),
        [](const std::string&) {});
    test::ServerThread thread(std::move(server));
    auto channel = net::zmq_connect(thread.endpoint());
    lora::AdapterSet client_adapters = initial.subset([&](int64_t layer) { return layer < cut; });
    SplitClientOptions client_options;
    client_options.client_id = "cpu-client";
    client_options.mode = SplitMode::vanilla;
    client_options.cut_layer = cut;
    SplitTrainStep step(cpu, client_adapters, *channel, client_options);
    const double loss = step.forward_backward(batch, StepContext{0, 0, 0.0, 0.0}).loss;  // lr 0
    EXPECT_NEAR(loss, local_loss, tolerance * std::abs(local_loss));
    for (const auto& [name, pair] : client_adapters.pairs()) {
      EXPECT_TRUE(pair.a.grad().device().is_cpu());
      EXPECT_LT(relative_norm_error(pair.a.grad(), local.pairs().at(name).a.grad()), tolerance) << name;
      EXPECT_LT(relative_norm_error(pair.b.grad(), local.pairs().at(name).b.grad()), tolerance) << name;
    }
    for (const auto& [name, pair] : thread.server().adapters_for("cpu-client").pairs()) {
      EXPECT_TRUE(pair.a.is_cuda()) << name;
      const at::Tensor grad_a = pair.a.grad().cpu(), grad_b = pair.b.grad().cpu();
      EXPECT_LT(relative_norm_error(grad_a, local.pairs().at(name).a.grad()), tolerance) << name;
      EXPECT_LT(relative_norm_error(grad_b, local.pairs().at(name).b.grad()), tolerance) << name;
    }
  }
}

}  // namespace
}  // namespace cleave::split
