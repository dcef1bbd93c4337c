// The `federation:` section of `cleave simulate` configurations: every key
// read into simulate::FleetOptions, written back by to_yaml, bad keys and
// values reported with their path.
#include <gtest/gtest.h>

#include "cli/config.h"

namespace cleave::cli {
namespace {

const char* kYaml = R"(
model: m.gguf
data: {train: "data/*.jsonl", seq_len: 32}
train: {steps: 3}
federation:
  clients: 0
  partition: natural
  rounds: 7
  clients_per_round: 5
  strategy: fedprox
  proximal_mu: 0.1
  mode: nosplit
  cut_layer: 2
  variant: sfl_v2
  transport: tcp
  workers: 2
  baselines: [centralized, local_only]
)";

TEST(SimulateConfig, ReadsTheFederationSection) {
  const SimulateConfig c = parse_simulate_config(kYaml, "test.yaml", {{"federation.rounds", "9"}});
  EXPECT_EQ(c.run.data.train, "data/*.jsonl");
  EXPECT_EQ(c.run.train.steps, 3);
  EXPECT_EQ(c.federation.partition, data::PartitionKind::natural);
  EXPECT_EQ(c.federation.rounds, 9);
  EXPECT_EQ(c.federation.clients_per_round, 5);
  EXPECT_EQ(c.federation.strategy.name, "fedprox");
  EXPECT_DOUBLE_EQ(c.federation.strategy.fedprox.proximal_mu, 0.1);
  EXPECT_EQ(c.federation.mode, simulate::FleetMode::nosplit);
  EXPECT_EQ(c.federation.variant, split::ServerVariant::sfl_v2);
  EXPECT_EQ(c.federation.transport, simulate::FleetTransport::tcp);
  EXPECT_EQ(c.federation.workers, 2);
  EXPECT_EQ(c.federation.baselines, (std::vector<std::string>{"centralized", "local_only"}));
  EXPECT_EQ(c.run.output_dir, "runs/simulate");

  const SimulateConfig again = parse_simulate_config(to_yaml(c), "resolved");
  EXPECT_EQ(again.federation.rounds, 9);
  EXPECT_EQ(again.federation.baselines, c.federation.baselines);
  EXPECT_EQ(again.federation.transport, simulate::FleetTransport::tcp);
}

TEST(SimulateConfig, ReportsBadKeysAndValuesWithTheirPath) {
  try {
    parse_simulate_config(kYaml, "test.yaml", {{"federation.roundz", "3"}});
    FAIL() << "an unknown key must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("federation.roundz"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("federation.rounds"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_simulate_config(kYaml, "test.yaml", {{"federation.rounds", "0"}}), ConfigError);
  EXPECT_THROW(parse_simulate_config(kYaml, "test.yaml", {{"federation.baselines", "[nope]"}}), ConfigError);
  EXPECT_THROW(parse_simulate_config(kYaml, "test.yaml", {{"federation.partition", "random"}}), ConfigError);
}

}  // namespace
}  // namespace cleave::cli
