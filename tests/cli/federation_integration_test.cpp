// A federation as separate processes on tcp://127.0.0.1 with TLS on every
// channel: `cleave split-server`, `cleave aggregator` and three `cleave
// client` sites complete two rounds; the aggregator checkpoints both rounds
// and closes them on the split server (SFL-V1), every site is told the run
// finished, and the split server stops cleanly on SIGTERM. The sites run
// u_shaped (the default): the split server receives no label bytes. The same
// federation runs again with secure aggregation, which every site requires.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "tests/cli/service_fixture.h"
#include "util/json.h"

namespace cleave {
namespace {

namespace fs = std::filesystem;
using test::ChildProcess;

void run_federation(const std::string& name, bool secure_aggregation) {
  const std::string dir = test::scratch_dir(name);
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  test::init_ca(dir);
  test::issue(dir, "split-server", "split-1");
  test::issue(dir, "aggregator", "agg");
  const std::vector<std::string> sites = {"site-a", "site-b", "site-c"};
  for (const std::string& site : sites) test::issue(dir, "client", site);
  const std::string lora = "lora: {rank: 2, alpha: 4.0, targets: [q, v]}\n";

  test::write_file(dir + "/split-server.yaml",
                   "model: " + model + "\n" + lora + "runtime: {threads: 1}\n"
                   "split_server: {bind: tcp://127.0.0.1:0, variant: sfl_v1, checkpoint: " + dir + "/split.gguf}\n" +
                       test::secure_section(dir, "split-1"));
  ChildProcess split("split-server", {"split-server", "--config", dir + "/split-server.yaml"});
  const auto split_endpoint = split.wait_for("listening on (tcp://127\\.0\\.0\\.1:[0-9]+)", test::kStartTimeout);
  ASSERT_TRUE(split_endpoint) << split.output();

  const std::string checkpoints = dir + "/aggregator";
  test::write_file(dir + "/aggregator.yaml",
                   "model: " + model + "\n" + lora +
                       "aggregator:\n"
                       "  bind: tcp://127.0.0.1:0\n"
                       "  rounds: 2\n"
                       "  clients_per_round: 3\n"
                       "  min_clients: 3\n"
                       "  round_deadline_ms: 300000\n"
                       "  poll_interval_ms: 100\n"
                       "  cut_layer: 1\n"
                       "  checkpoint_dir: " + checkpoints + "\n"
                       "  split_servers: ['" + *split_endpoint + "']\n"
                       "  split_server_name: split-1\n"
                       "  split_timeout_ms: 60000\n" +
                       (secure_aggregation ? "  secure_aggregation: {enabled: true}\n" : "") +
                       test::secure_section(dir, "agg"));
  ChildProcess aggregator("aggregator", {"aggregator", "--config", dir + "/aggregator.yaml"});
  const auto aggregator_endpoint =
      aggregator.wait_for("listening on (tcp://127\\.0\\.0\\.1:[0-9]+)", test::kStartTimeout);
  ASSERT_TRUE(aggregator_endpoint) << aggregator.output();

  std::vector<std::unique_ptr<ChildProcess>> clients;
  for (size_t i = 0; i < sites.size(); ++i) {
    const std::string& site = sites[i];
    const std::string data = test::write_site_data(dir + "/" + site + ".jsonl", 24, static_cast<int>(i));
    test::write_file(dir + "/" + site + ".yaml",
                     "model: " + model + "\n" + lora +
                         "data: {train: " + data + ", seq_len: 16, batch_size: 2}\n"
                         "train: {steps: 3, lr: 0.01, warmup_steps: 0, seed: " + std::to_string(i + 1) + "}\n"
                         "runtime: {threads: 1}\n"
                         "split: {server: '" + *split_endpoint + "', server_name: split-1, cut_layer: 1, "
                         "timeout_ms: 60000}\n"
                         "client: {aggregator: '" + *aggregator_endpoint + "', aggregator_name: agg, "
                         "request_timeout_ms: 60000" +
                         (secure_aggregation ? ", secure_aggregation: {required: true}" : "") + "}\n" +
                         test::secure_section(dir, site));
    clients.push_back(std::make_unique<ChildProcess>(site, std::vector<std::string>{"client", "--config",
                                                                                     dir + "/" + site + ".yaml"}));
  }

  const auto aggregator_status = aggregator.wait_exit(test::kRunTimeout);
  ASSERT_TRUE(aggregator_status) << aggregator.output();
  EXPECT_EQ(*aggregator_status, 0) << aggregator.output() << "\n--- split server ---\n" << split.output();
  EXPECT_CONTAINS(aggregator.output(), "finished: 2 rounds completed");
  EXPECT_CONTAINS(aggregator.output(), "sites must run u_shaped, cut_layer 1, top_cut 2");
  EXPECT_CONTAINS(aggregator.output(), "round 1 checkpointed: " + checkpoints + "/adapters-round-000001.gguf");
  for (const std::string& site : sites) EXPECT_CONTAINS(aggregator.output(), "client " + site + " registered");

  for (auto& client : clients) {
    SCOPED_TRACE(client->name());
    const auto status = client->wait_exit(test::kRunTimeout);
    ASSERT_TRUE(status) << client->output();
    EXPECT_EQ(*status, 0) << client->output();
    EXPECT_CONTAINS(client->output(), "the federation finished after 2 rounds; this site trained in 2");
    if (secure_aggregation) {
      EXPECT_CONTAINS(client->output(), "round 1: secure aggregation: masked input in the sum of 3 sites");
      EXPECT_CONTAINS(client->output(), "3 sites share masks (threshold 2)");
    } else {
      EXPECT_CONTAINS(client->output(), "update accepted");
    }
    EXPECT_CONTAINS(client->output(), "the head and the loss here (u_shaped: the labels stay here)");
    // Each round's cost to the site: 3 steps of 2 x 16 tokens.
    EXPECT_CONTAINS(client->output(), "; cost CPU ");
    EXPECT_CONTAINS(client->output(), "us/token over 96 tokens; forward ");
  }

  // The aggregator's checkpoint: the round state and the global adapters of
  // rounds 0 and 1, named as the log names them.
  const json::Value state = json::parse_file(checkpoints + "/state.json");
  EXPECT_EQ(state.at("completed_rounds").as_int(), 2);
  EXPECT_TRUE(fs::exists(checkpoints + "/adapters-round-000000.gguf"));
  EXPECT_TRUE(fs::exists(checkpoints + "/adapters-round-000001.gguf"));
  EXPECT_FALSE(fs::exists(checkpoints + "/adapters-round-000002.gguf"));

  // Both rounds were closed on the split server, over its aggregator-role channel.
  // u_shaped by default: the split server never received a label byte.
  EXPECT_TRUE(split.wait_for("closed round 0 \\(3 clients; 0 label bytes received in all\\)", test::kStartTimeout))
      << split.output();
  EXPECT_TRUE(split.wait_for("closed round 1 \\(3 clients; 0 label bytes received in all\\)", test::kStartTimeout))
      << split.output();
  EXPECT_CONTAINS(split.output(), "u_shaped top 2");
  EXPECT_CONTAINS(split.output(), "us/token over 288 tokens; forward ");   // the round's cost: 3 sites' tokens
  EXPECT_CONTAINS(aggregator.output(), "; cost CPU ");
  EXPECT_TRUE(fs::exists(dir + "/split.gguf"));
  split.signal(SIGTERM);
  const auto split_status = split.wait_exit(test::kStartTimeout);
  ASSERT_TRUE(split_status) << split.output();
  EXPECT_EQ(*split_status, 0) << split.output();
  if (secure_aggregation) {
    EXPECT_CONTAINS(aggregator.output(), "round 1 closed: 3 updates");
  }
}

TEST(FederationIntegration, AggregatorSplitServerAndThreeSitesCompleteTwoRounds) {
  run_federation("cli_federation_integration", false);
}

TEST(FederationIntegration, UnderSecureAggregationThreeSitesCompleteTwoRounds) {
  run_federation("cli_federation_secure_aggregation", true);
}

}  // namespace
}  // namespace cleave
