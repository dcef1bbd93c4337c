// The split server with many clients, repeated requests and bad input.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <thread>

#include "client/adamw.h"
#include "model/model_loader.h"
#include "split/split_client.h"
#include "split/split_messages.h"
#include "split/tensor_wire.h"
#include "tests/split/split_fixture.h"
#include "tests/support/tiny_model.h"
#include "transport/inproc_channel.h"
#include "transport/zmq_channel.h"

namespace cleave::split {
namespace {

class SplitServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_path_ = test::write_tiny_model("split_server");
    model_ = load_llama(model_path_, BaseQuant::q4);
    lora::LoraOptions options;
    options.rank = 4;
    full_ = lora::AdapterSet::create(*model_, options, 3);
    test::randomize_b(full_, 4);
  }

  std::unique_ptr<SplitServer> make_server(ServerVariant variant = ServerVariant::sfl_v1,
                                           std::string checkpoint = "") {
    SplitServerOptions options;
    options.variant = variant;
    options.lora = full_.options();
    options.checkpoint_path = checkpoint;
    return std::make_unique<SplitServer>(model_, options,
                                         full_.subset([](int64_t layer) { return layer >= 1; }),
                                         [](const std::string&) {});
  }

  // Trains `steps` steps for client `id` with cut `cut`; returns the losses.
  std::vector<double> train(const std::string& endpoint, const std::string& id, int32_t cut, int steps) {
    auto channel = net::zmq_connect(endpoint);
    lora::AdapterSet adapters = full_.subset([&](int64_t layer) { return layer < cut; });
    SplitClientOptions options;
    options.client_id = id;
    options.mode = SplitMode::vanilla;
    options.cut_layer = cut;
    SplitTrainStep step(model_, adapters, *channel, options);
    AdamW optimizer(adapters.parameters(), {});
    std::vector<double> losses;
    const uint64_t seed = std::hash<std::string>{}(id) % 1000;
    for (int s = 0; s < steps; ++s) {
      optimizer.zero_grad();
      losses.push_back(step.forward_backward(test::random_batch(64, 2, 8, seed + s),
                                             StepContext{s, 0, 1e-2, 1.0})
                           .loss);
      optimizer.step(1e-2);
    }
    return losses;
  }

  // Closes rounds as the aggregator does (split::EndRound), over its own connection.
  struct RoundCloser {
    std::unique_ptr<net::ClientChannel> channel;   // behind pointers: the step holds them across moves
    std::unique_ptr<lora::AdapterSet> none;
    std::unique_ptr<SplitTrainStep> step;
  };
  RoundCloser round_closer(const std::string& endpoint, const std::string& id = "aggregator") {
    RoundCloser closer;
    closer.channel = net::zmq_connect(endpoint);
    closer.none = std::make_unique<lora::AdapterSet>();
    SplitClientOptions options;
    options.client_id = id;
    options.mode = SplitMode::vanilla;
    closer.step = std::make_unique<SplitTrainStep>(model_, *closer.none, *closer.channel, options);
    return closer;
  }

  std::string model_path_;
  std::shared_ptr<LlamaModel> model_;
  lora::AdapterSet full_;
};

TEST_F(SplitServerTest, EightConcurrentClientsEachGetTheResultTheyGetAlone) {
  constexpr int kClients = 8;
  auto cut_of = [](int i) { return 1 + i % 2; };  // two cut layers among the clients
  std::vector<std::vector<double>> alone(kClients), together(kClients);
  for (int i = 0; i < kClients; ++i) {
    test::ServerThread server(make_server());
    alone[i] = train(server.endpoint(), "site-" + std::to_string(i), cut_of(i), 3);
  }
  {
    test::ServerThread server(make_server());
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back([&, i] { together[i] = train(server.endpoint(), "site-" + std::to_string(i), cut_of(i), 3); });
    }
    for (auto& t : threads) t.join();
  }
  for (int i = 0; i < kClients; ++i) {
    ASSERT_EQ(together[i].size(), 3u);
    for (int s = 0; s < 3; ++s) EXPECT_NEAR(together[i][s], alone[i][s], 1e-6) << "client " << i << " step " << s;
  }
  EXPECT_NE(alone[0][2], alone[0][0]) << "the server's optimizer should move the loss";
}

TEST_F(SplitServerTest, RepeatedRequestIsAnsweredFromStoreNotAppliedTwice) {
  auto server = make_server();
  Hello hello{"site-a", model_->base_fingerprint(), 0, 2, 0, 0, 0};
  server->handle("peer", wire::pack(static_cast<uint16_t>(MessageType::hello), hello));
  ForwardRequest request;
  request.key = StepKey{"site-a", 0, 0};
  at::Tensor smashed = at::randn({1, 4, 32});
  request.smashed = to_wire(smashed, wire::WireDType::F32);
  request.targets = {1, 2, 3, 4};
  request.weights = {1, 1, 1, 1};
  request.lr = 0.1;
  const net::Bytes frame = wire::pack(static_cast<uint16_t>(MessageType::forward), request);
  const net::Bytes first = server->handle("peer", frame);
  const lora::NamedTensors after_first = server->adapters_for("site-a").to_named();
  const net::Bytes second = server->handle("peer", frame);
  EXPECT_EQ(first, second);
  for (const auto& [name, tensor] : server->adapters_for("site-a").to_named()) {
    EXPECT_TRUE(at::equal(tensor, after_first.at(name))) << name << " changed by a repeated request";
  }
  EXPECT_EQ(wire::peek(first).type, static_cast<uint16_t>(MessageType::forward_reply));
}

TEST_F(SplitServerTest, HelloIsCheckedAgainstTheBasesWeightsNotItsShapeOrQuant) {
  auto server = make_server();   // runs the file as q4
  auto hello_from = [&](const std::string& id, const LlamaModel& site_model) {
    const Hello hello{id, site_model.base_fingerprint(), 0, 1, 0, 0, 0};
    return server->handle("peer", wire::pack(static_cast<uint16_t>(MessageType::hello), hello));
  };
  // A site running the same file as int8 is welcome.
  EXPECT_EQ(wire::peek(hello_from("site-int8", *load_llama(model_path_, BaseQuant::int8))).type,
            static_cast<uint16_t>(MessageType::hello_reply));
  // A site running another base of the same shape is refused.
  const net::Bytes reply =
      hello_from("site-other", *load_llama(test::write_tiny_model("split_server_other", 8), BaseQuant::q4));
  ASSERT_EQ(wire::peek(reply).type, static_cast<uint16_t>(MessageType::error));
  const auto error = wire::unpack<ErrorReply>(reply, static_cast<uint16_t>(MessageType::error), 1 << 20);
  EXPECT_NE(error.message.find("same GGUF"), std::string::npos) << error.message;
}

TEST_F(SplitServerTest, BadRequestsGetErrorRepliesAndOthersKeepTraining) {
  auto server = make_server();
  auto expect_error = [&](const net::Bytes& frame, const std::string& fragment) {
    const net::Bytes reply = server->handle("peer", frame);
    ASSERT_EQ(wire::peek(reply).type, static_cast<uint16_t>(MessageType::error));
    const auto error = wire::unpack<ErrorReply>(reply, static_cast<uint16_t>(MessageType::error), 1 << 20);
    EXPECT_NE(error.message.find(fragment), std::string::npos) << error.message;
  };
  // Garbage, no hello yet, wrong base, cut outside the model.
  EXPECT_THROW(wire::peek(net::Bytes{1, 2, 3}), wire::WireError);
  EXPECT_EQ(wire::peek(server->handle("peer", net::Bytes{1, 2, 3})).type, static_cast<uint16_t>(MessageType::error));
  ForwardRequest orphan;
  orphan.key = StepKey{"nobody", 0, 0};
  orphan.smashed = to_wire(at::zeros({1, 2, 32}), wire::WireDType::F32);
  expect_error(wire::pack(static_cast<uint16_t>(MessageType::forward), orphan), "hello");
  expect_error(wire::pack(static_cast<uint16_t>(MessageType::hello), Hello{"x", "dim=1", 0, 1, 0, 0, 0}),
               "same GGUF");
  expect_error(wire::pack(static_cast<uint16_t>(MessageType::hello),
                          Hello{"x", model_->base_fingerprint(), 0, 3, 0, 0, 0}),
               "cut_layer");

  Hello hello{"site-b", model_->base_fingerprint(), 0, 1, 0, 0, 0};
  server->handle("peer", wire::pack(static_cast<uint16_t>(MessageType::hello), hello));
  ForwardRequest bad;
  bad.key = StepKey{"site-b", 0, 0};
  bad.smashed = to_wire(at::zeros({1, 2, 16}), wire::WireDType::F32);   // wrong hidden size
  bad.targets = {1, 2};
  bad.weights = {1, 1};
  expect_error(wire::pack(static_cast<uint16_t>(MessageType::forward), bad), "shape");
  bad.smashed = to_wire(at::zeros({1, 2, 32}), wire::WireDType::F32);
  bad.targets = {1, 999};                                                // outside the vocabulary
  expect_error(wire::pack(static_cast<uint16_t>(MessageType::forward), bad), "vocabulary");
  bad.targets = {1};
  expect_error(wire::pack(static_cast<uint16_t>(MessageType::forward), bad), "targets");
  wire::WireTensor nan = to_wire(at::zeros({1, 2, 32}), wire::WireDType::F32);
  const float nan_value = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan.data.data() + 8, &nan_value, 4);
  bad.smashed = nan;
  bad.targets = {1, 2};
  expect_error(wire::pack(static_cast<uint16_t>(MessageType::forward), bad), "finite");

  // The server still trains a good client.
  test::ServerThread thread(std::move(server));
  const std::vector<double> losses = train(thread.endpoint(), "site-c", 2, 2);
  EXPECT_EQ(losses.size(), 2u);
}

TEST_F(SplitServerTest, SflV1AveragesPerClientCopiesAtRoundEndAndCheckpoints) {
  const std::string checkpoint = test::scratch_dir("split_ckpt") + "/server.gguf";
  lora::NamedTensors copy_a, copy_b, global;
  {
    test::ServerThread thread(make_server(ServerVariant::sfl_v1, checkpoint));
    train(thread.endpoint(), "site-a", 1, 2);
    train(thread.endpoint(), "site-b", 1, 2);
    copy_a = thread.server().adapters_for("site-a").to_named();
    copy_b = thread.server().adapters_for("site-b").to_named();
    EXPECT_FALSE(at::equal(copy_a.begin()->second, copy_b.begin()->second));
    RoundCloser control = round_closer(thread.endpoint(), "operator");
    EXPECT_EQ(control.step->end_round(0), 2u);
    global = thread.server().global_adapters().to_named();
    EXPECT_EQ(thread.server().round(), 1u);
  }
  for (const auto& [name, tensor] : global) {
    EXPECT_TRUE(at::allclose(tensor, (copy_a.at(name) + copy_b.at(name)) / 2, 1e-6, 1e-7)) << name;
  }
  // A restarted server resumes from the checkpoint at round 1.
  SplitServerOptions options;
  options.lora = full_.options();
  options.checkpoint_path = checkpoint;
  SplitServer restarted(model_, options, std::nullopt, [](const std::string&) {});
  EXPECT_EQ(restarted.round(), 1u);
  for (const auto& [name, tensor] : restarted.global_adapters().to_named()) {
    EXPECT_TRUE(at::equal(tensor, global.at(name))) << name;
  }
}

// The split server averages exactly the sites whose updates the aggregator
// accepted, and agrees with the aggregator on the round when it (re)starts.
TEST_F(SplitServerTest, SflV1AveragesOnlyAcceptedSitesAndSyncsToTheAggregatorsRound) {
  test::ServerThread thread(make_server(ServerVariant::sfl_v1, ""));
  train(thread.endpoint(), "site-a", 1, 2);
  train(thread.endpoint(), "site-b", 1, 2);   // b dies before its update reaches the aggregator
  const lora::NamedTensors copy_a = thread.server().adapters_for("site-a").to_named();
  RoundCloser control = round_closer(thread.endpoint());
  EXPECT_EQ(control.step->end_round(0, RoundSites{{"site-a"}, {}}), 1u);
  // The merge is the global plus site-a's delta: site-a's copy to float rounding.
  for (const auto& [name, tensor] : thread.server().global_adapters().to_named()) {
    EXPECT_TRUE(at::allclose(tensor, copy_a.at(name), 1e-6, 1e-7)) << name << ": site-b's partial copy was averaged in";
  }
  EXPECT_EQ(thread.server().round(), 1u);
}

// SFL-V1's server-side copies are averaged with the weights the aggregator
// gave the sites' updates (FedAvg: their samples), so both parts of the
// model are averaged alike; weights that do not fit the sites are refused.
TEST_F(SplitServerTest, SflV1WeighsEachSitesCopyAsTheAggregatorWeighedItsUpdate) {
  test::ServerThread thread(make_server(ServerVariant::sfl_v1, ""));
  train(thread.endpoint(), "site-a", 1, 2);
  train(thread.endpoint(), "site-b", 1, 2);
  const lora::NamedTensors copy_a = thread.server().adapters_for("site-a").to_named();
  const lora::NamedTensors copy_b = thread.server().adapters_for("site-b").to_named();
  RoundCloser control = round_closer(thread.endpoint());
  EXPECT_THROW(control.step->end_round(0, RoundSites{{"site-a", "site-b"}, {1.0}}), std::runtime_error);
  EXPECT_THROW(control.step->end_round(0, RoundSites{{"site-a", "site-b"}, {1.0, 0.0}}), std::runtime_error);
  EXPECT_EQ(thread.server().round(), 0u) << "a refused close must leave the round open";
  EXPECT_EQ(control.step->end_round(0, RoundSites{{"site-a", "site-b"}, {10.0, 30.0}}), 2u);
  for (const auto& [name, tensor] : thread.server().global_adapters().to_named()) {
    const at::Tensor expected = (copy_a.at(name) * 10 + copy_b.at(name) * 30) / 40;
    EXPECT_TRUE(at::allclose(tensor, expected, 1e-6, 1e-7)) << name;
    EXPECT_FALSE(at::allclose(tensor, (copy_a.at(name) + copy_b.at(name)) / 2, 1e-6, 1e-7)) << name;
  }
}

// An aggregator killed mid-round restarts and runs the round again: the
// split server must not carry a site's copy trained in the lost attempt into
// the new one (the site's own adapters start from the round's global ones).
TEST_F(SplitServerTest, SyncRoundToTheSameRoundStartsItAgainFromTheGlobalAdapters) {
  test::ServerThread thread(make_server(ServerVariant::sfl_v1, ""));
  const std::vector<double> lost = train(thread.endpoint(), "site-a", 1, 3);
  auto control = net::zmq_connect(thread.endpoint());
  control->send(wire::pack(static_cast<uint16_t>(MessageType::sync_round), SyncRound{0, {}, ""}));
  const std::optional<net::Bytes> reply = control->recv(std::chrono::milliseconds(60000));
  ASSERT_TRUE(reply);
  EXPECT_EQ(wire::unpack<SyncRoundReply>(*reply, static_cast<uint16_t>(MessageType::sync_round_reply), 1 << 20).round,
            0u);
  const std::vector<double> again = train(thread.endpoint(), "site-a", 1, 3);
  ASSERT_EQ(again.size(), lost.size());
  for (size_t s = 0; s < lost.size(); ++s) {
    EXPECT_NEAR(again[s], lost[s], 1e-6 * std::abs(lost[s])) << "step " << s << ": the rerun started elsewhere";
  }
  // Without the restart the same site's next three steps go on from its copy.
  const std::vector<double> onwards = train(thread.endpoint(), "site-a", 1, 3);
  EXPECT_LT(onwards.front(), again.front() - 1e-4);
}

TEST_F(SplitServerTest, SyncRoundClosesAMissedRoundOrMovesToTheAggregatorsRound) {
  std::vector<std::string> log;
  SplitServerOptions options;
  options.lora = full_.options();
  options.variant = ServerVariant::sfl_v1;
  SplitServer server(model_, options, std::nullopt, [&](const std::string& line) { log.push_back(line); });

  SyncRoundReply same = server.sync_round(0, {});
  EXPECT_EQ(same.previous_round, 0u);
  EXPECT_EQ(server.round(), 0u);
  EXPECT_TRUE(log.empty());

  // The aggregator checkpointed round 0 but died before EndRound.
  SyncRoundReply missed = server.sync_round(1, RoundSites{{"site-a"}, {}});
  EXPECT_EQ(missed.previous_round, 0u);
  EXPECT_EQ(server.round(), 1u);

  // A stale server (another run, round 1) meets a fresh aggregator (round 0), and the reverse.
  SyncRoundReply back = server.sync_round(0, {});
  EXPECT_EQ(back.previous_round, 1u);
  EXPECT_EQ(server.round(), 0u);
  SyncRoundReply ahead = server.sync_round(5, {});
  EXPECT_EQ(ahead.previous_round, 0u);
  EXPECT_EQ(server.round(), 5u);
  ASSERT_GE(log.size(), 2u);
  EXPECT_NE(log.back().find("moved to round 5"), std::string::npos) << log.back();
}

TEST_F(SplitServerTest, ClientGivesUpWithAClearErrorWhenNoServerAnswers) {
  auto silent = net::zmq_bind("tcp://127.0.0.1:0");
  auto channel = net::zmq_connect(silent->endpoint());
  lora::AdapterSet adapters = full_.subset([](int64_t layer) { return layer < 1; });
  SplitClientOptions options;
  options.mode = SplitMode::vanilla;
  options.timeout_ms = 50;
  options.max_attempts = 2;
  options.backoff_ms = 1;
  SplitTrainStep step(model_, adapters, *channel, options);
  try {
    step.connect();
    FAIL() << "expected SplitError";
  } catch (const SplitError& e) {
    EXPECT_NE(std::string(e.what()).find("did not answer hello after 2 attempts of 50 ms (last: no reply within 50 ms)"),
              std::string::npos)
        << e.what();
  }
}

// Issue 19's first bug: a split server restarted mid-round knows nothing of
// the site; the site says hello again and redoes the step instead of failing
// every step until it is restarted itself.
TEST_F(SplitServerTest, ClientSaysHelloAgainToARestartedServer) {
  SplitServerOptions server_options;
  server_options.lora = full_.options();
  auto first = std::make_unique<SplitServer>(model_, server_options, std::nullopt, [](const std::string&) {});
  net::InprocNetwork network;   // a restarted server takes its name again at once
  auto channel_a = network.bind("split");
  lora::AdapterSet adapters = full_.subset([](int64_t layer) { return layer < 1 || layer >= 2; });
  SplitClientOptions options;
  options.client_id = "site-a";
  options.cut_layer = 1;
  options.top_cut = 2;
  options.timeout_ms = 200;
  options.max_attempts = 20;
  options.backoff_ms = 5;
  auto client_channel = network.connect("split");
  SplitTrainStep step(model_, adapters, *client_channel, options);
  const data::Batch batch = test::random_batch(model_->config().vocab_size, 2, 6, 3);
  {
    std::atomic<bool> stop{false};
    std::thread serving([&] { first->serve(*channel_a, stop, 10); });
    EXPECT_GT(step.forward_backward(batch, StepContext{0, 0, 0.0, 0.0}).loss, 0.0);
    stop = true;
    serving.join();
  }
  first.reset();
  channel_a.reset();   // the old server is gone: the site's next send fails, then it reconnects

  SplitServer second(model_, server_options, std::nullopt, [](const std::string&) {});
  auto channel_b = network.bind("split");
  std::atomic<bool> stop{false};
  std::thread serving([&] { second.serve(*channel_b, stop, 10); });
  double loss = 0;
  EXPECT_NO_THROW(loss = step.forward_backward(batch, StepContext{1, 0, 0.0, 0.0}).loss);
  EXPECT_GT(loss, 0.0);
  EXPECT_NO_THROW(second.adapters_for("site-a")) << "the site said hello to the new server";
  stop = true;
  serving.join();
}

}  // namespace
}  // namespace cleave::split
