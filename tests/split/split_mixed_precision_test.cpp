// The split step with the server computing its blocks in bf16 and the client
// in float32, both on the CPU: the wire carries float32, the server casts
// activations in and gradients out, and the result stays within bf16's
// tolerance of the all-float32 local step (the CPU stand-in for a GPU server).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "client/train_step.h"
#include "model/model_loader.h"
#include "split/split_client.h"
#include "tests/split/split_fixture.h"
#include "tests/support/device_fixture.h"
#include "tests/support/shared_data.h"
#include "transport/zmq_channel.h"

namespace cleave::split {
namespace {

using test::device::relative_error;
using test::device::relative_norm_error;

// Per tensor, ||diff|| / ||grad||, as tests/client/mixed_precision_test.cpp.
constexpr double kBf16Tolerance = 1e-1;

TEST(SplitMixedPrecision, Bf16ServerFloat32ClientMatchesTheLocalStep) {
  CLEAVE_REQUIRE_SHARED(path, "models/stories260K.gguf");
  std::shared_ptr<LlamaModel> client_model = load_llama(path, BaseQuant::int8);
  std::shared_ptr<LlamaModel> server_model = load_llama(path, BaseQuant::int8);
  server_model->to(at::kCPU, at::kBFloat16);
  lora::LoraOptions options;
  options.rank = 4;
  lora::AdapterSet initial = lora::AdapterSet::create(*client_model, options, 3);
  test::randomize_b(initial, 4);
  const data::Batch batch = test::random_batch(client_model->config().vocab_size, 2, 24, 5);
  const int32_t cut = 2;

  lora::AdapterSet local = initial.clone();
  LocalTrainStep local_step(client_model, local);
  const double local_loss = local_step.forward_backward(batch, StepContext{}).loss;

  SplitServerOptions server_options;
  server_options.lora = options;
  auto server = std::make_unique<SplitServer>(
      server_model, server_options, initial.subset([&](int64_t layer) { return layer >= cut; }),
      [](const std::string&) {});
  test::ServerThread thread(std::move(server));
  auto channel = net::zmq_connect(thread.endpoint());
  lora::AdapterSet client_adapters = initial.subset([&](int64_t layer) { return layer < cut; });
  SplitClientOptions client_options;
  client_options.client_id = "bf16";
  client_options.mode = SplitMode::vanilla;
  client_options.cut_layer = cut;
  SplitTrainStep step(client_model, client_adapters, *channel, client_options);
  const double loss = step.forward_backward(batch, StepContext{0, 0, 0.0, 0.0}).loss;  // lr 0
  EXPECT_NEAR(loss, local_loss, kBf16Tolerance * std::abs(local_loss));
  ASSERT_FALSE(client_adapters.pairs().empty());
  for (const auto& [name, pair] : client_adapters.pairs()) {
    EXPECT_EQ(pair.a.grad().scalar_type(), at::kFloat);
    EXPECT_LT(relative_norm_error(pair.a.grad(), local.pairs().at(name).a.grad()), kBf16Tolerance) << name;
    EXPECT_LT(relative_norm_error(pair.b.grad(), local.pairs().at(name).b.grad()), kBf16Tolerance) << name;
  }
  const lora::AdapterSet& server_adapters = thread.server().adapters_for("bf16");
  ASSERT_FALSE(server_adapters.pairs().empty());
  for (const auto& [name, pair] : server_adapters.pairs()) {
    EXPECT_EQ(pair.a.scalar_type(), at::kFloat);  // master weights stay float32
    EXPECT_EQ(pair.b.grad().scalar_type(), at::kFloat);
    EXPECT_LT(relative_norm_error(pair.a.grad(), local.pairs().at(name).a.grad()), kBf16Tolerance) << name;
    EXPECT_LT(relative_norm_error(pair.b.grad(), local.pairs().at(name).b.grad()), kBf16Tolerance) << name;
  }
}

}  // namespace
}  // namespace cleave::split
