// The site's side: bounded retries when the aggregator is silent, recovery
// after a lost request (reconnect and resend), and a clear error when the
// site's adapters do not match the federation's.
#include "aggregator/federated_client.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <thread>

#include "aggregator/aggregator_service.h"
#include "lora/adapter_set.h"
#include "model/model_loader.h"
#include "tests/support/tiny_model.h"
#include "transport/inproc_channel.h"

namespace cleave::aggregator {
namespace {

std::vector<data::Example> examples(int64_t count, int64_t vocab) {
  std::vector<data::Example> out;
  for (int64_t i = 0; i < count; ++i) {
    data::Example example;
    for (int64_t t = 0; t < 12; ++t) example.tokens.push_back(static_cast<int32_t>(1 + (i * 7 + t * 3) % (vocab - 1)));
    example.loss_mask.assign(example.tokens.size() - 1, 1);
    out.push_back(std::move(example));
  }
  return out;
}

class FederatedClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = load_llama(test::write_tiny_model("federated_client", 31), BaseQuant::int8);
    lora_.rank = 2;
    lora_.targets = {"q", "v"};
    options_.client_id = "site-1";
    options_.train.steps = 2;
    options_.train.warmup_steps = 0;
    options_.train.log_every = 0;
    options_.batches.batch_size = 2;
    options_.batches.seq_len = 6;
    options_.request_timeout_ms = 100;
    options_.max_attempts = 3;
    options_.backoff_ms = 1;
  }
  std::shared_ptr<LlamaModel> model_;
  lora::LoraOptions lora_;
  FederatedClientOptions options_;
};

void quiet(const std::string&) {}

TEST_F(FederatedClientTest, GivesUpAfterMaxAttemptsWhenTheAggregatorIsSilent) {
  net::InprocNetwork network;
  auto silent = network.bind("aggregator");   // bound, never answers
  auto channel = network.connect("aggregator");
  lora::AdapterSet adapters = lora::AdapterSet::create(*model_, lora_, 1);
  LocalTrainStep step(model_, adapters);
  FederatedClient client(model_->base_fingerprint(), adapters, step, *channel, examples(4, 64), options_, quiet);
  try {
    client.run();
    FAIL() << "run() returned without an aggregator";
  } catch (const FederationError& e) {
    EXPECT_NE(std::string(e.what()).find("did not answer register after 3 attempts"), std::string::npos) << e.what();
  }
  int received = 0;
  while (silent->recv(net::Millis(0))) ++received;
  EXPECT_EQ(received, 3) << "one send per attempt";
}

TEST_F(FederatedClientTest, ResendsAfterALostRequestAndSendsOnlyAdapters) {
  net::InprocNetwork network;
  AggregatorOptions options;
  options.rounds = 2;
  options.poll_interval_ms = 1;
  AggregatorService service(options, global_adapters_for_model(*model_, lora_, 3, split::all_blocks()), quiet);
  auto server = network.bind("aggregator");
  std::atomic<bool> stop{false};
  std::set<net::PeerId> peers;
  std::set<FederationMessage> sent_by_site;
  std::thread relay([&] {
    bool dropped = false;
    while (!stop) {
      std::optional<net::Envelope> request = server->recv(net::Millis(5));
      if (!request) continue;
      peers.insert(request->peer);
      sent_by_site.insert(peek_message(request->payload));
      if (!dropped && peek_message(request->payload) == FederationMessage::update) {
        dropped = true;   // lose the first update: the site must resend it on a new connection
        continue;
      }
      server->send(request->peer, service.handle(request->peer, request->payload));
    }
  });
  auto channel = network.connect("aggregator");
  lora::AdapterSet adapters = lora::AdapterSet::create(*model_, lora_, 1);
  LocalTrainStep step(model_, adapters);
  FederatedClient client(model_->base_fingerprint(), adapters, step, *channel, examples(5, 64), options_, quiet);
  const SiteReport report = client.run();
  stop = true;
  relay.join();

  EXPECT_FALSE(report.failed);
  EXPECT_EQ(report.rounds_completed, 2u);
  ASSERT_EQ(report.rounds.size(), 2u);
  for (const SiteRound& round : report.rounds) EXPECT_TRUE(round.accepted) << round.error;
  EXPECT_EQ(service.completed_rounds(), 2u);
  EXPECT_EQ(peers.size(), 2u) << "the site reconnected once, under a new peer id";
  EXPECT_EQ(sent_by_site, (std::set<FederationMessage>{FederationMessage::register_client,
                                                        FederationMessage::round_request, FederationMessage::update}));
  EXPECT_EQ(service.history().at(0).num_samples, 5);
}

TEST_F(FederatedClientTest, AdaptersThatDoNotMatchTheFederationAreAnError) {
  net::InprocNetwork network;
  AggregatorOptions options;
  options.rounds = 1;
  options.poll_interval_ms = 1;
  AggregatorService service(options, global_adapters_for_model(*model_, lora_, 3, split::all_blocks()), quiet);
  auto server = network.bind("aggregator");
  std::atomic<bool> stop{false};
  std::thread serving([&] { service.serve(*server, stop, 5); });
  auto channel = network.connect("aggregator");
  lora::LoraOptions other = lora_;
  other.targets = {"q", "k"};
  lora::AdapterSet adapters = lora::AdapterSet::create(*model_, other, 1);
  LocalTrainStep step(model_, adapters);
  FederatedClient client(model_->base_fingerprint(), adapters, step, *channel, examples(3, 64), options_, quiet);
  try {
    client.run();
    ADD_FAILURE() << "a site with other LoRA targets trained";
  } catch (const FederationError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot train round 0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("attn_v"), std::string::npos) << e.what();
  }
  stop = true;
  serving.join();
  EXPECT_EQ(service.completed_rounds(), 0u);
}

}  // namespace
}  // namespace cleave::aggregator
