// The configuration files of the services (split-server, aggregator, client)
// and the split:/secure: sections of `cleave train`: checked-in examples
// parse, TLS is the default, unknown keys name their path, and the resolved
// YAML reads back to the same values.
#include "cli/config_services.h"

#include <gtest/gtest.h>

#include "tests/cli/cli_runner.h"

namespace cleave::cli {
namespace {

const std::string kTls = "secure: {cert: n.crt, key: n.key, ca: ca.crt}\n";

template <typename Parse>
std::string error_of(Parse parse) {
  try {
    parse();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ServiceConfig, SplitSectionOfTrain) {
  const RunConfig local = parse_config("model: m.gguf\ndata: {train: t.jsonl}\n", "x.yaml");
  EXPECT_FALSE(local.split.enabled());
  const RunConfig c = parse_config("model: m.gguf\ndata: {train: t.jsonl}\n"
                                   "split: {server: 'tcp://h:5555', mode: u_shaped, cut_layer: 2, top_cut: 3, "
                                   "activation_codec: int8, gradient_codec: bf16}\n" + kTls,
                                   "x.yaml");
  EXPECT_TRUE(c.split.enabled());
  EXPECT_EQ(c.split.options.mode, split::SplitMode::u_shaped);
  EXPECT_EQ(c.split.options.cut_layer, 2);
  EXPECT_EQ(c.split.options.activation_codec, wire::WireDType::I8_ROWSCALE);
  EXPECT_EQ(c.split.options.gradient_codec, wire::WireDType::BF16);
  EXPECT_EQ(c.split.options.client_id, "");
  EXPECT_FALSE(c.secure.insecure);
  EXPECT_EQ(parse_config(to_yaml(c), "resolved.yaml").split.options.top_cut, 3);
  EXPECT_EQ(to_yaml(parse_config(to_yaml(c), "resolved.yaml")), to_yaml(c));
  EXPECT_FALSE(c.split.options.stochastic_rounding);

  const RunConfig int4 = parse_config("model: m.gguf\ndata: {train: t.jsonl}\n"
                                      "split: {server: 'tcp://h:5555', activation_codec: int4, gradient_codec: int4, "
                                      "stochastic_rounding: true}\n" + kTls,
                                      "x.yaml");
  EXPECT_EQ(int4.split.options.activation_codec, wire::WireDType::I4_GROUP);
  EXPECT_EQ(int4.split.options.gradient_codec, wire::WireDType::I4_GROUP);
  EXPECT_TRUE(int4.split.options.stochastic_rounding);
  EXPECT_EQ(to_yaml(parse_config(to_yaml(int4), "resolved.yaml")), to_yaml(int4));

  // Micro-batches would each be a step of the split server's adapters.
  EXPECT_CONTAINS(error_of([] {
                    parse_config("model: m.gguf\ndata: {train: t.jsonl}\ntrain: {micro_batch: 2}\n"
                                 "split: {server: 'tcp://h:5555', cut_layer: 2}\n" + kTls,
                                 "x.yaml");
                  }),
                  "train.micro_batch: with a split: section");

  // A split server without TLS files, or with a mistyped key, is refused.
  EXPECT_CONTAINS(error_of([] {
                    parse_config("model: m.gguf\ndata: {train: t.jsonl}\nsplit: {server: 'tcp://h:1'}\n", "x.yaml");
                  }),
                  "secure.cert: required");
  EXPECT_CONTAINS(error_of([] {
                    parse_config("model: m.gguf\ndata: {train: t.jsonl}\nsplit: {server: 'tcp://h:1', cut_layr: 2}\n",
                                 "x.yaml");
                  }),
                  "unknown key 'split.cut_layr' (did you mean 'split.cut_layer'?)");
  EXPECT_CONTAINS(error_of([] {
                    parse_config("model: m.gguf\ndata: {train: t.jsonl}\nsplit: {server: 'tcp://h:1', "
                                 "activation_codec: f8}\n",
                                 "x.yaml");
                  }),
                  "split.activation_codec: expected one of f32, f16, bf16, int8, int4");

  // u_shaped unless vanilla is asked for; top_cut above cut_layer; clip and noise in range.
  EXPECT_EQ(local.split.options.mode, split::SplitMode::u_shaped);
  const std::string with_split = "model: m.gguf\ndata: {train: t.jsonl}\nsplit: {server: 'tcp://h:1', ";
  EXPECT_CONTAINS(error_of([&] { parse_config(with_split + "cut_layer: 3, top_cut: 2}\n" + kTls, "x.yaml"); }),
                  "x.yaml: split.top_cut must be above split.cut_layer (3; 0: the last block), got 2");
  EXPECT_CONTAINS(error_of([&] { parse_config(with_split + "activation_clip: -1}\n" + kTls, "x.yaml"); }),
                  "x.yaml: split.activation_clip must be >= 0 (0: off; a per-token L2 bound), got -1");
  EXPECT_CONTAINS(error_of([&] { parse_config(with_split + "activation_noise: 0.5}\n" + kTls, "x.yaml"); }),
                  "split.activation_noise 0.500000 needs split.activation_clip > 0");
  EXPECT_CONTAINS(error_of([&] {
                    parse_config(with_split + "activation_clip: 4, activation_noise: 2000}\n" + kTls, "x.yaml");
                  }),
                  "split.activation_noise must be in [0, 1000] (a multiple of the clip), got 2000");
  const RunConfig guarded =
      parse_config(with_split + "activation_clip: 4, activation_noise: 0.25}\n" + kTls, "x.yaml");
  EXPECT_DOUBLE_EQ(guarded.split.options.protection.clip, 4);
  EXPECT_DOUBLE_EQ(guarded.split.options.protection.noise, 0.25);
  EXPECT_EQ(to_yaml(parse_config(to_yaml(guarded), "resolved.yaml")), to_yaml(guarded));
}

TEST(ServiceConfig, SplitServerFile) {
  const SplitServerFile c = parse_split_server_config(
      "model: m.gguf\nlora: {rank: 4}\nsplit_server: {bind: 'tcp://*:0', variant: sfl_v2, min_cut_layer: 2, "
      "checkpoint: s.gguf, recompute: true, strategy: {name: fedadam, fedopt: {eta: 0.03}}}\n" + kTls,
      "s.yaml");
  EXPECT_EQ(c.split_server.options.variant, split::ServerVariant::sfl_v2);
  EXPECT_EQ(c.split_server.options.strategy.name, "fedadam");
  EXPECT_DOUBLE_EQ(c.split_server.options.strategy.fedopt.eta, 0.03);
  EXPECT_EQ(c.split_server.options.min_cut_layer, 2);
  EXPECT_EQ(c.split_server.options.checkpoint_path, "s.gguf");
  EXPECT_TRUE(c.split_server.options.recompute);
  EXPECT_EQ(c.lora.rank, 4);
  EXPECT_EQ(to_yaml(parse_split_server_config(to_yaml(c), "resolved")), to_yaml(c));
  EXPECT_CONTAINS(error_of([] {
                    parse_split_server_config("model: m.gguf\nsplit_server: {varaint: sfl_v1}\n", "s.yaml");
                  }),
                  "s.yaml:2: unknown key 'split_server.varaint' (did you mean 'split_server.variant'?)");
  EXPECT_CONTAINS(error_of([] {
                    parse_split_server_config("model: m.gguf\nsplit_server: {strategy: {name: fedavgg}}\n", "s.yaml");
                  }),
                  "split_server.strategy.name");
  EXPECT_CONTAINS(error_of([] { parse_split_server_config("model: m.gguf\n", "s.yaml"); }), "secure.cert: required");
  EXPECT_NO_THROW(parse_split_server_config("model: m.gguf\nsecure: {insecure: true}\n", "s.yaml"));
  // Multi-hop: the next hop's address, name and cut, and the previous hop's name.
  const SplitServerFile hop = parse_split_server_config(
      "model: m.gguf\nsplit_server: {min_cut_layer: 1, previous: split-0, next: {address: 'tcp://h:5560', name: "
      "split-2, cut_layer: 3, activation_codec: bf16}}\nsecure: {insecure: true}\n",
      "s.yaml");
  EXPECT_EQ(hop.split_server.options.next.address, "tcp://h:5560");
  EXPECT_EQ(hop.split_server.options.next.name, "split-2");
  EXPECT_EQ(hop.split_server.options.next.cut_layer, 3);
  EXPECT_EQ(hop.split_server.options.next.activation_codec, wire::WireDType::BF16);
  EXPECT_EQ(hop.split_server.previous, "split-0");
  EXPECT_CONTAINS(error_of([] {
                    parse_split_server_config(
                        "model: m.gguf\nsplit_server: {next: {cut_layer: 3}}\nsecure: {insecure: true}\n", "s.yaml");
                  }),
                  "split_server.next.address: required");
  EXPECT_CONTAINS(error_of([] {
                    parse_split_server_config("model: m.gguf\nsplit_server: {min_cut_layer: 2, next: {address: "
                                              "'tcp://h:1', cut_layer: 2}}\nsecure: {insecure: true}\n",
                                              "s.yaml");
                  }),
                  "split_server.next.cut_layer must be above split_server.min_cut_layer (2), got 2");
}

TEST(ServiceConfig, AggregatorFile) {
  const AggregatorFile c = parse_aggregator_config(
      "model: m.gguf\naggregator:\n  rounds: 4\n  clients_per_round: 2\n  min_clients: 2\n  on_deadline: fail\n"
      "  sampling: passes\n"
      "  split_servers: ['tcp://s:5555']\n  cut_layer: 1\n"
      "  strategy: {name: fedadam, fedopt: {eta: 0.05, beta1: 0.8}}\n" + kTls,
      "a.yaml");
  EXPECT_EQ(c.aggregator.options.rounds, 4);
  EXPECT_EQ(c.aggregator.options.on_deadline, aggregator::OnDeadline::fail);
  EXPECT_EQ(c.aggregator.options.sampling, aggregator::ClientSampling::passes);
  EXPECT_EQ(c.aggregator.options.strategy.name, "fedadam");
  EXPECT_DOUBLE_EQ(c.aggregator.options.strategy.fedopt.eta, 0.05);
  EXPECT_EQ(c.aggregator.options.split_servers, (std::vector<std::string>{"tcp://s:5555"}));
  EXPECT_EQ(to_yaml(parse_aggregator_config(to_yaml(c), "resolved")), to_yaml(c));
  EXPECT_CONTAINS(error_of([] { parse_aggregator_config("aggregator: {rounds: 2}\n" + kTls, "a.yaml"); }),
                  "model: required unless aggregator.initial_adapters");
  const AggregatorFile momentum = parse_aggregator_config(
      "model: m.gguf\naggregator:\n  strategy: {name: fedavgm, fedavgm: {eta: 2.5, momentum: 0.6}}\n" + kTls, "a.yaml");
  EXPECT_EQ(momentum.aggregator.options.strategy.name, "fedavgm");
  EXPECT_DOUBLE_EQ(momentum.aggregator.options.strategy.fedavgm.eta, 2.5);
  EXPECT_DOUBLE_EQ(momentum.aggregator.options.strategy.fedavgm.momentum, 0.6);
  EXPECT_CONTAINS(error_of([] {
                    parse_aggregator_config(
                        "model: m.gguf\naggregator: {strategy: {name: fedavgm, fedavgm: {momentum: 1.5}}}\n" + kTls,
                        "a.yaml");
                  }),
                  "fedavgm.momentum");
  EXPECT_CONTAINS(error_of([] {
                    parse_aggregator_config("model: m.gguf\naggregator: {strategy: {name: fedsgd}}\n" + kTls, "a.yaml");
                  }),
                  "aggregator.strategy.name: expected one of fedavg");
  EXPECT_CONTAINS(error_of([] {
                    parse_aggregator_config("model: m.gguf\naggregator: {min_clients: 0}\n" + kTls, "a.yaml");
                  }),
                  "min_clients");
  // Client-level DP: the dp section, checked with the rest.
  const AggregatorFile dp = parse_aggregator_config(
      "model: m.gguf\naggregator:\n  fraction: 0.1\n"
      "  dp: {enabled: true, clip_norm: 0.5, target_epsilon: 3, delta: 1.0e-6}\n" + kTls,
      "a.yaml");
  EXPECT_TRUE(dp.aggregator.options.dp.enabled);
  EXPECT_DOUBLE_EQ(dp.aggregator.options.dp.clip_norm, 0.5);
  EXPECT_DOUBLE_EQ(dp.aggregator.options.dp.target_epsilon, 3);
  EXPECT_DOUBLE_EQ(dp.aggregator.options.dp.delta, 1e-6);
  EXPECT_CONTAINS(error_of([] {
                    parse_aggregator_config("model: m.gguf\naggregator: {dp: {enabled: true, noise_multiplier: 1}}\n" +
                                                kTls, "a.yaml");
                  }),
                  "dp.clip_norm must be finite and > 0");
  EXPECT_CONTAINS(error_of([] {
                    parse_aggregator_config(
                        "model: m.gguf\naggregator: {clients_per_round: 3, dp: {enabled: true, clip_norm: 1, "
                        "noise_multiplier: 1}}\n" + kTls, "a.yaml");
                  }),
                  "Poisson-sampled");
  // The sites' layout: u_shaped by default, vanilla by name; top_cut above cut_layer.
  EXPECT_EQ(c.aggregator.split_mode, split::SplitMode::u_shaped);
  EXPECT_EQ(parse_aggregator_config("model: m.gguf\naggregator: {cut_layer: 1, split_mode: vanilla}\n" + kTls, "a.yaml")
                .aggregator.split_mode,
            split::SplitMode::vanilla);
  EXPECT_CONTAINS(error_of([] {
                    parse_aggregator_config("model: m.gguf\naggregator: {cut_layer: 2, top_cut: 2}\n" + kTls, "a.yaml");
                  }),
                  "a.yaml: aggregator.top_cut must be above aggregator.cut_layer (2; 0: the last block), got 2");
  EXPECT_CONTAINS(error_of([] {
                    parse_aggregator_config("model: m.gguf\naggregator: {split_mode: ushaped}\n" + kTls, "a.yaml");
                  }),
                  "aggregator.split_mode: expected one of u_shaped, vanilla");
}

// Secure aggregation at the aggregator: its section, and what it refuses.
TEST(ServiceConfig, SecureAggregationSections) {
  const AggregatorFile c = parse_aggregator_config(
      "model: m.gguf\naggregator:\n  secure_aggregation: {enabled: true, threshold: 0.6, min_sites: 4, "
      "phase_timeout_ms: 5000, scale_bits: 20, clip_range: 2, weight_cap: 100}\n" + kTls,
      "a.yaml");
  const aggregator::SecureAggregationOptions& sa = c.aggregator.options.secure_aggregation;
  EXPECT_TRUE(sa.enabled);
  EXPECT_DOUBLE_EQ(sa.threshold, 0.6);
  EXPECT_EQ(sa.min_sites, 4);
  EXPECT_EQ(sa.phase_timeout_ms, 5000);
  EXPECT_EQ(sa.scale_bits, 20);
  EXPECT_DOUBLE_EQ(sa.clip_range, 2);
  EXPECT_EQ(sa.weight_cap, 100);
  EXPECT_EQ(sa.threshold_for(10), 7u);
  EXPECT_EQ(to_yaml(parse_aggregator_config(to_yaml(c), "resolved")), to_yaml(c));
  const std::string on = "model: m.gguf\naggregator:\n  secure_aggregation: {enabled: true}\n";
  EXPECT_CONTAINS(error_of([&] { parse_aggregator_config(on + "secure: {insecure: true}\n", "a.yaml"); }),
                  "aggregator.secure_aggregation needs TLS");
  EXPECT_CONTAINS(error_of([&] {
                    parse_aggregator_config(on + "  strategy: {name: median}\n" + kTls, "a.yaml");
                  }),
                  "strategy median needs every site's update");
  EXPECT_CONTAINS(error_of([&] {
                    parse_aggregator_config(on + "  strategy: {name: fedavg, robust: {clip_norm: 1}}\n" + kTls,
                                            "a.yaml");
                  }),
                  "cannot clip updates it never sees");
  EXPECT_CONTAINS(error_of([&] {
                    parse_aggregator_config(
                        "model: m.gguf\naggregator:\n  secure_aggregation: {enabled: true, threshold: 0.4}\n" + kTls,
                        "a.yaml");
                  }),
                  "secure_aggregation.threshold must be in [0.5, 1)");
  EXPECT_CONTAINS(error_of([&] {
                    parse_aggregator_config(
                        "model: m.gguf\naggregator:\n  secure_aggregation: {enabled: true, scale_bits: 40, "
                        "weight_cap: 1000000}\n" + kTls,
                        "a.yaml");
                  }),
                  "overflow 2^63");
  EXPECT_CONTAINS(error_of([&] {
                    parse_aggregator_config(
                        "model: m.gguf\naggregator:\n  fraction: 0.5\n  dp: {enabled: true, clip_norm: 1, "
                        "noise_multiplier: 1, noise: distributed}\n" + kTls,
                        "a.yaml");
                  }),
                  "dp.noise distributed");
  // The site's requirements.
  const std::string base = "model: m.gguf\ndata: {train: site.jsonl}\nsplit: {server: 'tcp://s:5555'}\n";
  const ClientFile site = parse_client_config(
      base + "client: {aggregator: 'tcp://a:5556', secure_aggregation: {required: true, min_threshold: 0.6, "
             "min_sites: 5}}\n" + kTls,
      "site.yaml");
  EXPECT_TRUE(site.client.secure_aggregation.required);
  EXPECT_DOUBLE_EQ(site.client.secure_aggregation.min_threshold, 0.6);
  EXPECT_EQ(site.client.secure_aggregation.min_sites, 5);
  EXPECT_EQ(to_yaml(parse_client_config(to_yaml(site), "resolved")), to_yaml(site));
  EXPECT_CONTAINS(error_of([&] {
                    parse_client_config(base + "client: {id: s, aggregator: 'tcp://a:1', secure_aggregation: "
                                               "{required: true}}\nsecure: {insecure: true}\n",
                                        "site.yaml");
                  }),
                  "client.secure_aggregation.required needs TLS");
}

TEST(ServiceConfig, ClientFile) {
  const std::string base = "model: m.gguf\ndata: {train: site.jsonl}\nsplit: {server: 'tcp://s:5555'}\n";
  const ClientFile c = parse_client_config(base + "client: {aggregator: 'tcp://a:5556'}\n" + kTls, "site.yaml");
  EXPECT_EQ(c.client.aggregator, "tcp://a:5556");
  EXPECT_EQ(c.run.output_dir, "runs/client");
  EXPECT_EQ(to_yaml(parse_client_config(to_yaml(c), "resolved")), to_yaml(c));
  // A site runs u_shaped by default (its labels stay at the site); vanilla only when asked for.
  EXPECT_EQ(c.run.split.options.mode, split::SplitMode::u_shaped);
  EXPECT_EQ(parse_client_config("model: m.gguf\ndata: {train: site.jsonl}\nsplit: {server: 'tcp://s:5555', mode: "
                                "vanilla}\nclient: {aggregator: 'tcp://a:5556'}\n" + kTls,
                                "site.yaml")
                .run.split.options.mode,
            split::SplitMode::vanilla);
  EXPECT_CONTAINS(error_of([&] { parse_client_config(base + kTls, "site.yaml"); }), "client.aggregator: required");
  EXPECT_CONTAINS(error_of([&] {
                    parse_client_config(base + "client: {aggregator: 'tcp://a:1'}\nsecure: {insecure: true}\n",
                                        "site.yaml");
                  }),
                  "client.id: required with secure.insecure: true");
}

TEST(ServiceConfig, CheckedInServiceConfigsParse) {
  const std::string root = CLEAVE_SOURCE_DIR;
  const std::vector<Override> tls = {parse_override("secure.cert=c"), parse_override("secure.key=k"),
                                     parse_override("secure.ca=a")};
  std::vector<Override> with_model = tls;
  with_model.push_back(parse_override("model=m.gguf"));
  const SplitServerFile s = load_split_server_config(root + "/configs/split-server.yaml", with_model);
  EXPECT_EQ(to_yaml(s), to_yaml(parse_split_server_config("model: m.gguf\nsecure: {cert: c, key: k, ca: a}\n",
                                                          root + "/configs/split-server.yaml")));
  const AggregatorFile a = load_aggregator_config(root + "/configs/aggregator.yaml", with_model);
  EXPECT_EQ(to_yaml(a), to_yaml(parse_aggregator_config("model: m.gguf\nsecure: {cert: c, key: k, ca: a}\n",
                                                        root + "/configs/aggregator.yaml")));
  const ClientFile site = load_client_config(root + "/configs/site.yaml");
  EXPECT_EQ(site.client.aggregator, "tcp://aggregator.example.org:5556");
  EXPECT_EQ(site.run.split.options.activation_codec, wire::WireDType::I8_ROWSCALE);
}

}  // namespace
}  // namespace cleave::cli
