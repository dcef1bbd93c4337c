// The `federation:` section of `cleave simulate` configurations: every key
// read into simulate::FleetOptions, written back by to_yaml, bad keys and
// values reported with their path.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

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
  server_lr: 0.02
  server_tau: 0.005
  fedavgm: {eta: 2.0, momentum: 0.5}
  lr_across_rounds: true
  sampling: passes
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
  EXPECT_DOUBLE_EQ(c.federation.strategy.fedopt.eta, 0.02);
  EXPECT_DOUBLE_EQ(c.federation.strategy.fedopt.tau, 0.005);
  EXPECT_DOUBLE_EQ(c.federation.strategy.fedavgm.eta, 2.0);
  EXPECT_DOUBLE_EQ(c.federation.strategy.fedavgm.momentum, 0.5);
  EXPECT_TRUE(c.federation.lr_across_rounds);
  EXPECT_EQ(c.federation.sampling, aggregator::ClientSampling::passes);
  EXPECT_EQ(c.federation.mode, simulate::FleetMode::nosplit);
  EXPECT_EQ(c.federation.variant, split::ServerVariant::sfl_v2);
  EXPECT_EQ(c.federation.transport, simulate::FleetTransport::tcp);
  EXPECT_EQ(c.federation.workers, 2);
  EXPECT_EQ(c.federation.baselines, (std::vector<std::string>{"centralized", "local_only"}));
  EXPECT_EQ(c.run.output_dir, "runs/simulate");
  EXPECT_EQ(c.federation.activation_codec, wire::WireDType::F32);
  EXPECT_FALSE(c.federation.stochastic_rounding);

  const SimulateConfig int4 = parse_simulate_config(
      kYaml, "test.yaml",
      {{"federation.activation_codec", "int4"}, {"federation.gradient_codec", "int8"},
       {"federation.stochastic_rounding", "true"}});
  EXPECT_EQ(int4.federation.activation_codec, wire::WireDType::I4_GROUP);
  EXPECT_EQ(int4.federation.gradient_codec, wire::WireDType::I8_ROWSCALE);
  EXPECT_TRUE(int4.federation.stochastic_rounding);
  EXPECT_EQ(parse_simulate_config(to_yaml(int4), "resolved").federation.activation_codec, wire::WireDType::I4_GROUP);
  EXPECT_THROW(parse_simulate_config(kYaml, "test.yaml", {{"federation.gradient_codec", "int3"}}), ConfigError);

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
  // Chat formats are read by the fleet's data loader too; unknown ones are refused by key.
  EXPECT_EQ(parse_simulate_config(kYaml, "test.yaml", {{"data.chat_template", "chatml"}}).run.data.chat_template,
            "chatml");
  try {
    parse_simulate_config(kYaml, "test.yaml", {{"data.chat_template", "vicuna"}});
    FAIL() << "an unknown chat format was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data.chat_template"), std::string::npos) << e.what();
  }
  // Recomputed blocks replay dropout from the one process-wide generator.
  EXPECT_TRUE(parse_simulate_config(kYaml, "test.yaml", {{"train.recompute", "true"}}).run.train.recompute);
  try {
    parse_simulate_config(kYaml, "test.yaml",
                          {{"train.recompute", "true"}, {"federation.workers", "2"}, {"lora.dropout", "0.1"}});
    FAIL() << "recompute with dropout and concurrent sites must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("federation.workers: 1 or lora.dropout: 0"), std::string::npos) << e.what();
  }
  // Micro-batches: a nosplit fleet's sites step locally; a split fleet's
  // sites would make every micro-batch a step of the split server.
  EXPECT_EQ(parse_simulate_config(kYaml, "test.yaml", {{"train.micro_batch", "2"}}).run.train.micro_batch, 2);
  try {
    parse_simulate_config(kYaml, "test.yaml", {{"train.micro_batch", "2"}, {"federation.mode", "split"}});
    FAIL() << "micro-batches in a split fleet must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.micro_batch: a split fleet"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_simulate_config(kYaml, "test.yaml", {{"federation.baselines", "[nope]"}}), ConfigError);
  // The split layout and the activations' protection.
  EXPECT_EQ(parse_simulate_config(kYaml, "test.yaml").federation.split_mode, split::SplitMode::u_shaped);
  EXPECT_EQ(parse_simulate_config(kYaml, "test.yaml", {{"federation.split_mode", "vanilla"}}).federation.split_mode,
            split::SplitMode::vanilla);
  for (const auto& [key, value, message] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"federation.top_cut", "2", "federation.top_cut must be above federation.cut_layer (2; 0: the last block), got 2"},
           {"federation.activation_clip", "-2", "federation.activation_clip must be >= 0"},
           {"federation.activation_noise", "0.5", "federation.activation_noise 0.500000 needs federation.activation_clip > 0"},
           {"federation.split_mode", "ushaped", "federation.split_mode: expected one of u_shaped, vanilla"}}) {
    try {
      parse_simulate_config(kYaml, "test.yaml", {{key, value}});
      ADD_FAILURE() << key << "=" << value << " must be refused";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      const std::string where = std::string(e.what()).substr(0, std::string(e.what()).find(": "));
      EXPECT_TRUE(where == "test.yaml" || where == "--set " + key + "=" + value) << e.what();
    }
  }
  EXPECT_THROW(parse_simulate_config(kYaml, "test.yaml", {{"federation.partition", "random"}}), ConfigError);
  // Multi-hop chains: the hops' first blocks, from the sites' cut_layer up.
  EXPECT_EQ(parse_simulate_config(kYaml, "test.yaml", {{"federation.mode", "split"}, {"federation.split_chain", "[2,3]"}})
                .federation.split_chain,
            (std::vector<int64_t>{2, 3}));
  for (const auto& [chain, message] : std::vector<std::pair<std::string, std::string>>{
           {"[2,2]", "federation.split_chain must increase"},
           {"[1,3]", "federation.split_chain starts where the sites hand over, federation.cut_layer (2), not at 1"}}) {
    try {
      parse_simulate_config(kYaml, "test.yaml", {{"federation.mode", "split"}, {"federation.split_chain", chain}});
      ADD_FAILURE() << chain << " must be refused";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
  try {
    parse_simulate_config(kYaml, "test.yaml", {{"federation.split_chain", "[2,3]"}});
    ADD_FAILURE() << "a chain without split must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("federation.split_chain needs federation.mode split"), std::string::npos);
  }
}

TEST(SimulateConfig, EncryptedByDefaultPlaintextOnlyWithSecureInsecure) {
  const SimulateConfig tls = parse_simulate_config(kYaml, "test.yaml");
  EXPECT_FALSE(tls.run.secure.insecure);
  EXPECT_NE(to_yaml(tls).find("insecure: false"), std::string::npos) << to_yaml(tls);

  const SimulateConfig plain = parse_simulate_config(kYaml, "test.yaml", {{"secure.insecure", "true"}});
  EXPECT_TRUE(plain.run.secure.insecure);
  // config.resolved.yaml records it, and reads back the same.
  EXPECT_NE(to_yaml(plain).find("insecure: true"), std::string::npos) << to_yaml(plain);
  EXPECT_TRUE(parse_simulate_config(to_yaml(plain), "resolved").run.secure.insecure);
  const std::string file = std::string(kYaml) + "secure: {insecure: true}\n";
  EXPECT_TRUE(parse_simulate_config(file, "test.yaml").run.secure.insecure);
}

TEST(SimulateConfig, ATypoInTheInsecureKeyIsRefusedWithASuggestion) {
  try {
    parse_simulate_config(std::string(kYaml) + "secure:\n  insecur: true\n", "test.yaml");
    FAIL() << "a mistyped key must be refused, not read as the default (encrypted) or ignored";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("secure.insecur"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("secure.insecure"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_simulate_config(kYaml, "test.yaml", {{"secure.insecure", "maybe"}}), ConfigError);
}

TEST(SimulateConfig, RefusesIdentityFilesBecauseTheRunMakesItsOwnCa) {
  try {
    parse_simulate_config(kYaml, "test.yaml", {{"secure.cert", "site.crt"}});
    FAIL() << "secure.cert has no meaning for a simulated fleet";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("secure.cert"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("throw-away CA"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_simulate_config(kYaml, "test.yaml", {{"secure.handshake_timeout_ms", "0"}}), ConfigError);
}

}  // namespace
}  // namespace cleave::cli
