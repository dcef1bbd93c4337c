// An SFL-V1 split server merges its per-client copies at a round's end with
// the aggregator's strategy (FedAdam's moments, the median's robustness), the
// aggregator's weights, and refuses to close a round for an aggregator that
// merges otherwise; the strategy's state survives a restart.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "model/model_loader.h"
#include "split/split_messages.h"
#include "split/split_server.h"
#include "split/tensor_wire.h"
#include "tests/split/split_fixture.h"
#include "tests/support/tiny_model.h"

namespace cleave::split {
namespace {

class SplitServerStrategyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = load_llama(test::write_tiny_model("split_server_strategy"), BaseQuant::int8);
    lora::LoraOptions options;
    options.rank = 2;
    options.targets = {"q", "v"};
    start_ = lora::AdapterSet::create(*model_, options, 3, [](int64_t layer) { return layer >= 1; });
    test::randomize_b(start_, 4);
  }

  std::unique_ptr<SplitServer> make_server(const std::string& strategy, const std::string& checkpoint = "") {
    SplitServerOptions options;
    options.lora = start_.options();
    options.strategy.name = strategy;
    options.checkpoint_path = checkpoint;
    options.release_clients_at_round_end = true;   // a round's copies start from the merge, as after a restart
    if (!checkpoint.empty() && std::filesystem::exists(checkpoint)) {
      return std::make_unique<SplitServer>(model_, options, std::nullopt, [](const std::string&) {});
    }
    return std::make_unique<SplitServer>(model_, options, start_, [](const std::string&) {});
  }

  // `steps` vanilla steps of client `id` (cut 1) in `round`, on its own random activations.
  void train(SplitServer& server, const std::string& id, uint32_t round, int steps) {
    const Hello hello{id, model_->base_fingerprint(), 0, 1, 0, 0, 0};
    ASSERT_EQ(wire::peek(server.handle(id, wire::pack(static_cast<uint16_t>(MessageType::hello), hello))).type,
              static_cast<uint16_t>(MessageType::hello_reply));
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(std::hash<std::string>{}(id) % 1000);
    for (int s = 0; s < steps; ++s) {
      ForwardRequest request;
      request.key = StepKey{id, round, static_cast<uint64_t>(s)};
      request.smashed = to_wire(at::randn({1, 4, 32}, gen), wire::WireDType::F32);
      request.targets = {1, 2, 3, 4};
      request.weights = {1, 1, 1, 1};
      request.lr = 0.05;
      const net::Bytes reply = server.handle(id, wire::pack(static_cast<uint16_t>(MessageType::forward), request));
      ASSERT_EQ(wire::peek(reply).type, static_cast<uint16_t>(MessageType::forward_reply));
    }
  }

  // The server's reply to EndRound: "" when it closed the round, else its error.
  static std::string close(SplitServer& server, const EndRound& end) {
    const net::Bytes reply = server.handle("aggregator", wire::pack(static_cast<uint16_t>(MessageType::end_round), end));
    if (wire::peek(reply).type == static_cast<uint16_t>(MessageType::end_round_reply)) return "";
    return wire::unpack<ErrorReply>(reply, static_cast<uint16_t>(MessageType::error), 1 << 20).message;
  }

  std::shared_ptr<LlamaModel> model_;
  lora::AdapterSet start_;
};

// FedAdam (Reddi et al. 2021, Algorithm 2, no bias correction) on the
// weighted mean of the copies' deltas, written out here:
//   d = sum_k w_k (x_k - x) / sum_k w_k,  m = (1 - beta1) d,
//   v = beta2 tau^2 + (1 - beta2) d^2,    x' = x + eta m / (sqrt(v) + tau).
TEST_F(SplitServerStrategyTest, FedAdamMergesTheWeightedMeanDeltaWithServerMoments) {
  auto server = make_server("fedadam");
  train(*server, "site-a", 0, 2);
  train(*server, "site-b", 0, 2);
  const lora::NamedTensors global = server->global_adapters().to_named();
  const lora::NamedTensors copy_a = server->adapters_for("site-a").to_named();
  const lora::NamedTensors copy_b = server->adapters_for("site-b").to_named();
  const aggregator::StrategyOptions fedadam = [] {
    aggregator::StrategyOptions o;
    o.name = "fedadam";
    return o;
  }();
  ASSERT_EQ(close(*server, EndRound{0, {{"site-a", "site-b"}, {10, 30}}, aggregator::strategy_signature(fedadam)}),
            "");
  const double eta = 0.01, beta1 = 0.9, beta2 = 0.99, tau = 1e-3;
  bool moved = false;
  for (const auto& [name, merged] : server->global_adapters().to_named()) {
    const at::Tensor x = global.at(name);
    const at::Tensor d = ((copy_a.at(name) - x) * 10 + (copy_b.at(name) - x) * 30) / 40;
    const at::Tensor m = d * (1 - beta1);
    const at::Tensor v = d * d * (1 - beta2) + beta2 * tau * tau;
    const at::Tensor expected = x + m * eta / (at::sqrt(v) + tau);
    EXPECT_TRUE(at::allclose(merged, expected, 1e-5, 1e-7)) << name;
    moved = moved || !at::allclose(merged, x);
  }
  EXPECT_TRUE(moved) << "the copies trained, the merge moved nothing";
}

// The median needs each copy: with three sites it is the middle one per coordinate.
TEST_F(SplitServerStrategyTest, MedianMergesEachCopyCoordinateWise) {
  auto server = make_server("median");
  for (const char* id : {"site-a", "site-b", "site-c"}) train(*server, id, 0, 2);
  const lora::NamedTensors global = server->global_adapters().to_named();
  std::vector<lora::NamedTensors> copies;
  for (const char* id : {"site-a", "site-b", "site-c"}) copies.push_back(server->adapters_for(id).to_named());
  ASSERT_EQ(close(*server, EndRound{0, {{"site-a", "site-b", "site-c"}, {1, 1, 100}}, ""}), "");
  for (const auto& [name, merged] : server->global_adapters().to_named()) {
    const at::Tensor stacked = at::stack({copies[0].at(name), copies[1].at(name), copies[2].at(name)});
    const at::Tensor median = std::get<0>(stacked.median(0));
    EXPECT_TRUE(at::allclose(merged, median, 1e-6, 1e-7)) << name;
  }
}

TEST_F(SplitServerStrategyTest, AnAggregatorMergingOtherwiseIsRefusedAndTheRoundStaysOpen) {
  auto server = make_server("fedadam");
  train(*server, "site-a", 0, 1);
  aggregator::StrategyOptions fedavg;
  const std::string error = close(*server, EndRound{0, {{"site-a"}, {}}, aggregator::strategy_signature(fedavg)});
  EXPECT_NE(error.find("fedavg (lora separate)"), std::string::npos) << error;
  EXPECT_NE(error.find("fedadam (eta 0.01"), std::string::npos) << error;
  EXPECT_NE(error.find("split_server.strategy"), std::string::npos) << error;
  EXPECT_EQ(server->round(), 0u);
  const net::Bytes sync = server->handle(
      "aggregator", wire::pack(static_cast<uint16_t>(MessageType::sync_round),
                               SyncRound{0, {}, aggregator::strategy_signature(fedavg)}));
  EXPECT_EQ(wire::peek(sync).type, static_cast<uint16_t>(MessageType::error)) << "checked from the first SyncRound";
}

// The moments are checkpointed beside the adapters: a restarted server
// merges round 1 as one that never stopped, and a server set to another
// strategy refuses the checkpoint.
TEST_F(SplitServerStrategyTest, FedAdamMomentsSurviveARestart) {
  const std::string dir = test::scratch_dir("split_server_strategy_ckpt");
  const std::string checkpoint = dir + "/server.gguf";
  auto steady = make_server("fedadam");
  {
    auto first = make_server("fedadam", checkpoint);
    for (SplitServer* server : {steady.get(), first.get()}) {
      train(*server, "site-a", 0, 2);
      ASSERT_EQ(close(*server, EndRound{0, {{"site-a"}, {}}, ""}), "");
    }
  }
  EXPECT_TRUE(std::filesystem::exists(checkpoint + ".strategy-round-1.safetensors"));
  try {
    make_server("fedyogi", checkpoint);
    ADD_FAILURE() << "a FedYogi server resumed a FedAdam checkpoint";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("resume with the checkpoint's split_server.strategy"), std::string::npos)
        << e.what();
  }
  auto restarted = make_server("fedadam", checkpoint);
  ASSERT_EQ(restarted->round(), 1u);
  for (SplitServer* server : {steady.get(), restarted.get()}) {
    train(*server, "site-a", 1, 2);
    ASSERT_EQ(close(*server, EndRound{1, {{"site-a"}, {}}, ""}), "");
  }
  const lora::NamedTensors expected = steady->global_adapters().to_named();
  for (const auto& [name, tensor] : restarted->global_adapters().to_named()) {
    EXPECT_TRUE(at::allclose(tensor, expected.at(name), 1e-6, 1e-8)) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(checkpoint + ".strategy-round-1.safetensors")) << "superseded by round 2's";
  EXPECT_TRUE(std::filesystem::exists(checkpoint + ".strategy-round-2.safetensors"));

  std::filesystem::remove(checkpoint + ".strategy-round-2.safetensors");
  EXPECT_THROW(make_server("fedadam", checkpoint), std::runtime_error);
}

}  // namespace
}  // namespace cleave::split
