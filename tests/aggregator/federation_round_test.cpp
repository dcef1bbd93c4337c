// Whole federations in one process over the in-process transport: an
// aggregator serving in its own thread, three FederatedClients training a tiny
// model in theirs, and (SFL-V1) a split server whose rounds close with the
// aggregator's. The same role code runs over ZeroMQ in a deployment.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "aggregator/aggregation.h"
#include "aggregator/aggregator_link.h"
#include "aggregator/aggregator_service.h"
#include "aggregator/federated_client.h"
#include "lora/adapter_set.h"
#include "model/model_loader.h"
#include "secagg/key_signature.h"
#include "secure/ca.h"
#include "split/split_client.h"
#include "split/split_server.h"
#include "tests/aggregator/federation_fixture.h"
#include "tests/support/tiny_model.h"
#include "transport/inproc_channel.h"

namespace cleave::aggregator {
namespace {

// Random token examples for one site; `count` differs per site so FedAvg's
// weights matter.
std::vector<data::Example> site_examples(int64_t count, uint64_t seed, int64_t vocab) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<data::Example> examples;
  for (int64_t i = 0; i < count; ++i) {
    const at::Tensor ids = at::randint(1, vocab, {14}, gen, at::kInt).contiguous();
    data::Example example;
    example.tokens.resize(static_cast<size_t>(ids.numel()));
    std::memcpy(example.tokens.data(), ids.data_ptr<int32_t>(), example.tokens.size() * sizeof(int32_t));
    example.loss_mask.assign(example.tokens.size() - 1, 1);
    examples.push_back(std::move(example));
  }
  return examples;
}

FederatedClientOptions site_options(const std::string& id, uint64_t seed) {
  FederatedClientOptions options;
  options.client_id = id;
  options.train.steps = 3;
  options.train.lr = 2e-2;
  options.train.warmup_steps = 0;
  options.train.log_every = 0;
  options.batches.batch_size = 2;
  options.batches.seq_len = 8;
  options.batches.seed = seed;
  options.request_timeout_ms = 20000;
  options.backoff_ms = 10;
  return options;
}

AggregatorOptions aggregator_options(int64_t rounds) {
  AggregatorOptions options;
  options.rounds = rounds;
  options.clients_per_round = 3;
  options.min_clients = 3;
  options.round_deadline_ms = 120000;
  options.poll_interval_ms = 2;   // how long a site waits between polls
  options.seed = 5;
  return options;
}

void quiet(const std::string&) {}

struct Site {
  std::string id;
  uint64_t seed;
  std::vector<data::Example> examples;
};

class Federation : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = load_llama(test::write_tiny_model("federation_round", 23), BaseQuant::int8);
    lora_.rank = 2;
    lora_.alpha = 4;
    lora_.targets = {"q", "v", "down"};
    const int64_t vocab = model_->config().vocab_size;
    sites_ = {{"site-a", 101, site_examples(4, 1, vocab)},
              {"site-b", 202, site_examples(6, 2, vocab)},
              {"site-c", 303, site_examples(9, 3, vocab)}};
  }

  // Local training of one site from `global`, as FederatedClient does it,
  // computed here on its own for the expected result.
  NamedTensors local_delta(const Site& site, const NamedTensors& global, uint32_t round) {
    lora::AdapterSet adapters = lora::AdapterSet::create(*model_, lora_, 0);
    adapters.assign(global);
    LocalTrainStep step(model_, adapters);
    FederatedClientOptions options = site_options(site.id, site.seed);
    TrainOptions train = options.train;
    train.round = round;
    data::BatchOptions batches = options.batches;
    batches.seed = round_batch_seed(site.seed, round);
    data::BatchStream stream(site.examples, batches);
    Trainer(step, train).run(stream);
    NamedTensors delta;
    const NamedTensors local = adapters.to_named();
    for (const auto& [name, start] : global) delta[name] = local.at(name) - start;
    return delta;
  }

  // Serves `service` on an in-process network while every site runs
  // `site(i, channel to the aggregator)` on a thread of its own, until the
  // run is over; returns what each site reported.
  std::vector<SiteReport> run_sites(AggregatorService& service, net::InprocNetwork& network,
                                    const std::function<SiteReport(size_t, net::ClientChannel&)>& site) {
    auto server_channel = network.bind("aggregator");
    std::atomic<bool> stop{false};
    std::thread aggregator_thread([&] { service.serve(*server_channel, stop, 5); });
    std::vector<SiteReport> reports(sites_.size());
    std::vector<std::thread> site_threads;
    for (size_t i = 0; i < sites_.size(); ++i) {
      site_threads.emplace_back([&, i] {
        auto channel = network.connect("aggregator");
        reports[i] = site(i, *channel);
      });
    }
    for (std::thread& t : site_threads) t.join();
    aggregator_thread.join();   // serve() returns once every site was told the run is over
    return reports;
  }

  // run_sites with every site training locally (no split), its options
  // adjusted by `configure` (site index, options) when given.
  std::vector<SiteReport> run_local_sites(
      AggregatorService& service, net::InprocNetwork& network,
      const std::function<void(size_t, FederatedClientOptions&)>& configure = {}) {
    return run_sites(service, network, [&](size_t i, net::ClientChannel& channel) {
      const Site& site = sites_[i];
      lora::AdapterSet adapters = lora::AdapterSet::create(*model_, lora_, /*seed=*/1000 + i);   // overwritten by the global
      LocalTrainStep step(model_, adapters);
      FederatedClientOptions options = site_options(site.id, site.seed);
      if (configure) configure(i, options);
      FederatedClient client(model_->base_fingerprint(), adapters, step, channel, site.examples, options, quiet);
      return client.run();
    });
  }

  // The sample-weighted FedAvg, in float64, of every site's local training
  // from `start` in `round`.
  NamedTensors fedavg_of_sites(const NamedTensors& start, uint32_t round) {
    NamedTensors sum;
    double total = 0;
    for (const Site& site : sites_) {
      const double n = static_cast<double>(site.examples.size());
      total += n;
      for (const auto& [name, d] : local_delta(site, start, round)) {
        const at::Tensor weighted = d.to(at::kDouble) * n;
        sum[name] = sum.count(name) ? sum[name] + weighted : weighted;
      }
    }
    NamedTensors mean;
    for (const auto& [name, tensor] : start) mean[name] = tensor.to(at::kDouble) + sum.at(name) / total;
    return mean;
  }

  std::shared_ptr<LlamaModel> model_;
  lora::LoraOptions lora_;
  std::vector<Site> sites_;
};

TEST_F(Federation, ThreeSitesOneFedAvgRoundOverInproc) {
  net::InprocNetwork network;
  const GlobalAdapters initial = global_adapters_for_model(*model_, lora_, /*seed=*/9, split::all_blocks());
  AggregatorService service(aggregator_options(1), initial, quiet);
  const std::vector<SiteReport> reports = run_local_sites(service, network);

  ASSERT_EQ(service.state(), RunState::finished) << service.failure();
  for (size_t i = 0; i < sites_.size(); ++i) {
    ASSERT_EQ(reports[i].rounds.size(), 1u);
    const SiteRound& round = reports[i].rounds[0];
    EXPECT_TRUE(round.accepted) << round.error;
    EXPECT_EQ(round.num_samples, static_cast<int64_t>(sites_[i].examples.size()));
    EXPECT_TRUE(round.metrics.count("train_loss"));
    EXPECT_EQ(reports[i].rounds_completed, 1u);
    test::expect_tensors_near(round.delta, local_delta(sites_[i], initial.tensors, 0), 1e-6);
  }
  const NamedTensors global = service.global().tensors;
  test::expect_tensors_near(global, fedavg_of_sites(initial.tensors, 0), 1e-6);
  double moved = 0;
  for (const auto& [name, tensor] : global) moved += (tensor - initial.tensors.at(name)).abs().sum().item<double>();
  EXPECT_GT(moved, 1e-3) << "local training should have changed the adapters";
  const RoundSummary summary = service.history().at(0);
  EXPECT_EQ(summary.num_samples, 4 + 6 + 9);
  EXPECT_GT(service.bytes().total_bytes(wire::Direction::sent), 0u);
}

// Client-level DP end to end: each site clips its whole delta to the norm the
// aggregator announces, and the aggregator divides the (here practically
// noiseless) sum by the expected participants (q = 1: all three), not by
// their sample counts.
TEST_F(Federation, UnderDpSitesClipTheirDeltaAndTheMeanIsUnweighted) {
  net::InprocNetwork network;
  const GlobalAdapters initial = global_adapters_for_model(*model_, lora_, /*seed=*/9, split::all_blocks());
  AggregatorOptions options = aggregator_options(1);
  options.clients_per_round = 0;
  options.fraction_per_round = 1.0;
  options.min_clients = 1;
  options.min_registered = 3;
  options.dp.enabled = true;
  options.dp.clip_norm = 1e-3;           // below every site's delta norm: all are clipped
  options.dp.noise_multiplier = 1e-9;   // noise far below the tolerance
  options.dp.noise_seed = 1;
  AggregatorService service(options, initial, quiet);
  const std::vector<SiteReport> reports = run_local_sites(service, network);
  ASSERT_EQ(service.state(), RunState::finished) << service.failure();

  NamedTensors expected;
  for (const auto& [name, start] : initial.tensors) expected[name] = start.to(at::kDouble);
  for (size_t i = 0; i < sites_.size(); ++i) {
    ASSERT_EQ(reports[i].rounds.size(), 1u);
    const NamedTensors& sent = reports[i].rounds[0].delta;
    EXPECT_NEAR(global_norm(sent), 1e-3, 1e-8) << sites_[i].id << " did not clip its delta";
    const NamedTensors unclipped = local_delta(sites_[i], initial.tensors, 0);
    EXPECT_GT(global_norm(unclipped), 1e-3);
    const ClippedDelta clipped = clip_by_norm(unclipped, 1e-3);
    for (const auto& [name, d] : clipped.delta) expected[name] = expected[name] + d.to(at::kDouble) / 3.0;
  }
  test::expect_tensors_near(service.global().tensors, expected, 1e-7);
  ASSERT_TRUE(service.history().at(0).dp_epsilon.has_value());
  EXPECT_GT(*service.history().at(0).dp_epsilon, 100);   // z = 1e-9 protects nothing, and says so
}

TEST_F(Federation, SflV1SplitServerRoundsAdvanceInStepWithTheAggregator) {
  const int32_t cut = 1;
  net::InprocNetwork network;
  split::SplitServerOptions split_options;
  split_options.lora = lora_;
  split_options.min_cut_layer = cut;
  split_options.variant = split::ServerVariant::sfl_v1;
  split::SplitServer split_server(model_, split_options, std::nullopt, quiet);
  auto split_channel = network.bind("split");
  std::atomic<bool> stop_split{false};
  std::thread split_thread([&] { split_server.serve(*split_channel, stop_split, 5); });

  const GlobalAdapters initial =
      global_adapters_for_model(*model_, lora_, 9, split::SiteBlocks{split::SiteLayout::vanilla, cut, 0});
  for (const auto& [name, tensor] : initial.tensors) ASSERT_LT(lora::layer_of(name.substr(0, name.rfind('.'))), cut);
  AggregatorOptions options = aggregator_options(2);
  options.split_servers = {"split"};
  std::vector<std::pair<uint32_t, uint32_t>> closed;   // (aggregator rounds completed, split server round)
  AggregatorService service(options, initial, quiet, nullptr,
                            [&](const std::string& endpoint) { return network.connect(endpoint); });
  service.on_round_closed([&](const RoundSummary& summary, const GlobalAdapters&) {
    closed.emplace_back(summary.round + 1, summary.split_clients_averaged.at(0));
  });
  const std::vector<SiteReport> reports = run_sites(service, network, [&](size_t i, net::ClientChannel& to_aggregator) {
    const Site& site = sites_[i];
    auto to_split = network.connect("split");
    lora::AdapterSet adapters =
        lora::AdapterSet::create(*model_, lora_, 0, [cut](int64_t layer) { return layer < cut; });
    split::SplitClientOptions split_client;
    split_client.client_id = site.id;
    split_client.mode = split::SplitMode::vanilla;
    split_client.cut_layer = cut;
    split_client.timeout_ms = 20000;
    split::SplitTrainStep step(model_, adapters, *to_split, split_client);
    FederatedClientOptions options = site_options(site.id, site.seed);
    options.blocks = split::SiteBlocks{split::SiteLayout::vanilla, cut, 0};
    FederatedClient client(model_->base_fingerprint(), adapters, step, to_aggregator, site.examples,
                           options, quiet);
    return client.run();
  });
  stop_split = true;
  split_thread.join();

  ASSERT_EQ(service.state(), RunState::finished) << service.failure();
  for (const SiteReport& report : reports) {
    ASSERT_EQ(report.rounds.size(), 2u);
    for (const SiteRound& round : report.rounds) {
      EXPECT_TRUE(round.trained) << round.error;   // the split server accepted the steps of both rounds
      EXPECT_TRUE(round.accepted) << round.error;
    }
  }
  // Each aggregator round ended the split server's round, averaging the three sites' server copies.
  EXPECT_EQ(closed, (std::vector<std::pair<uint32_t, uint32_t>>{{1, 3}, {2, 3}}));
  EXPECT_EQ(split_server.round(), 2u);
  EXPECT_EQ(service.completed_rounds(), 2u);
  // After the SFL-V1 average every site's server-side copy is the global one.
  for (const Site& site : sites_) {
    test::expect_tensors_equal(split_server.adapters_for(site.id).to_named(), split_server.global_adapters().to_named());
  }
}

// Every element of `actual` within `relative` of `expected`, relative to the
// largest magnitude of the expected tensor.
void expect_relative_near(const NamedTensors& actual, const NamedTensors& expected, double relative) {
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [name, tensor] : actual) {
    ASSERT_TRUE(expected.count(name)) << name;
    const at::Tensor want = expected.at(name).to(at::kDouble);
    const double scale = std::max(want.abs().max().item<double>(), 1e-12);
    EXPECT_LE((tensor.to(at::kDouble) - want).abs().max().item<double>(), relative * scale) << name;
  }
}

// The issue's must-show: one u_shaped site, float32 codec, one round through
// the aggregator and an SFL-V1 split server gives the same adapters on the
// site (blocks [0, cut) and [top_cut, L)) and on the split server ([cut,
// top_cut)) as local training of the whole model for the same steps.
TEST_F(Federation, OneUShapedSiteRoundEqualsLocalTraining) {
  const int32_t cut = 1, top = 2;   // the tiny model has 3 blocks: 0 and 2 at the site, 1 on the server
  const split::SiteBlocks blocks{split::SiteLayout::u_shaped, cut, top};
  const Site& site = sites_[2];
  net::InprocNetwork network;
  split::SplitServerOptions split_options;
  split_options.lora = lora_;
  split_options.min_cut_layer = cut;
  split_options.variant = split::ServerVariant::sfl_v1;
  split::SplitServer split_server(model_, split_options, std::nullopt, quiet);
  const NamedTensors server_start = split_server.global_adapters().to_named();
  auto split_channel = network.bind("split");
  std::atomic<bool> stop_split{false};
  std::thread split_thread([&] { split_server.serve(*split_channel, stop_split, 5); });

  const GlobalAdapters initial = global_adapters_for_model(*model_, lora_, 9, blocks);
  for (const auto& [name, tensor] : initial.tensors) {
    const int64_t layer = lora::layer_of(name.substr(0, name.rfind('.')));
    ASSERT_TRUE(layer < cut || layer >= top) << name;
  }
  AggregatorOptions options = aggregator_options(1);
  options.clients_per_round = 1;
  options.min_clients = 1;
  options.split_servers = {"split"};
  AggregatorService service(options, initial, quiet, nullptr,
                            [&](const std::string& endpoint) { return network.connect(endpoint); });
  auto server_channel = network.bind("aggregator");
  std::atomic<bool> stop{false};
  std::thread aggregator_thread([&] { service.serve(*server_channel, stop, 5); });

  FederatedClientOptions site_opts = site_options(site.id, site.seed);
  site_opts.train.grad_clip = 0;   // clipping is global over all adapters locally, per side when split
  site_opts.blocks = blocks;
  SiteReport report;
  uint64_t label_bytes_sent = 0;
  {
    auto aggregator_channel = network.connect("aggregator");
    auto to_split = network.connect("split");
    lora::AdapterSet adapters = lora::AdapterSet::create(*model_, lora_, 0, blocks.keep_layer());
    split::SplitClientOptions split_client;
    split_client.client_id = site.id;
    split_client.mode = split::SplitMode::u_shaped;
    split_client.cut_layer = cut;
    split_client.top_cut = top;
    split_client.timeout_ms = 20000;
    split::SplitTrainStep step(model_, adapters, *to_split, split_client);
    FederatedClient client(model_->base_fingerprint(), adapters, step, *aggregator_channel, site.examples,
                           site_opts, quiet);
    report = client.run();
    label_bytes_sent = step.label_bytes();
  }
  aggregator_thread.join();
  stop_split = true;
  split_thread.join();
  ASSERT_EQ(service.state(), RunState::finished) << service.failure();
  ASSERT_EQ(report.rounds.size(), 1u);
  ASSERT_TRUE(report.rounds[0].accepted) << report.rounds[0].error;
  EXPECT_EQ(label_bytes_sent, 0u);
  EXPECT_EQ(split_server.label_bytes(), 0u);

  // The reference: the whole model's adapters (the site's start from the
  // aggregator, the server's from the split server) trained locally.
  lora::AdapterSet whole = lora::AdapterSet::create(*model_, lora_, 0);
  NamedTensors start = initial.tensors;
  for (const auto& [name, tensor] : server_start) {
    if (!start.count(name)) start[name] = tensor;
  }
  whole.assign(start);
  LocalTrainStep local_step(model_, whole);
  TrainOptions train = site_opts.train;
  data::BatchOptions batches = site_opts.batches;
  batches.seed = round_batch_seed(site.seed, 0);
  data::BatchStream stream(site.examples, batches);
  Trainer(local_step, train).run(stream);
  const NamedTensors trained = whole.to_named();

  NamedTensors expected_site, expected_server, actual_server;
  for (const auto& [name, tensor] : trained) {
    const int64_t layer = lora::layer_of(name.substr(0, name.rfind('.')));
    (blocks.contains(layer) ? expected_site : expected_server)[name] = tensor;
  }
  for (const auto& [name, tensor] : split_server.global_adapters().to_named()) {
    if (!blocks.contains(lora::layer_of(name.substr(0, name.rfind('.'))))) actual_server[name] = tensor;
  }
  expect_relative_near(service.global().tensors, expected_site, 1e-5);
  expect_relative_near(actual_server, expected_server, 1e-5);
  double moved = 0;
  for (const auto& [name, tensor] : expected_server) moved += (tensor - start.at(name)).abs().sum().item<double>();
  EXPECT_GT(moved, 1e-4) << "the server's block should have trained";
}

TEST_F(Federation, SiteWithOtherBlocksIsRefusedAtRegistration) {
  net::InprocNetwork network;
  const split::SiteBlocks federation{split::SiteLayout::u_shaped, 1, 2};
  AggregatorService service(aggregator_options(1), global_adapters_for_model(*model_, lora_, 9, federation), quiet);
  auto server_channel = network.bind("aggregator");
  std::atomic<bool> stop{false};
  std::thread aggregator_thread([&] { service.serve(*server_channel, stop, 5); });
  auto channel = network.connect("aggregator");
  LinkOptions link_options;
  link_options.request_timeout_ms = 20000;
  AggregatorLink link(*channel, "site-a", link_options, quiet);
  const std::string fingerprint = model_->base_fingerprint();
  try {
    link.register_site(fingerprint, 4, split::SiteBlocks{split::SiteLayout::vanilla, 1, 0}, lora_);
    ADD_FAILURE() << "a vanilla site joined a u_shaped federation";
  } catch (const FederationError& e) {
    EXPECT_NE(std::string(e.what()).find("runs vanilla, cut_layer 1 but this federation's sites run u_shaped, "
                                         "cut_layer 1, top_cut 2"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(link.register_site(fingerprint, 4, split::SiteBlocks{split::SiteLayout::u_shaped, 1, 3}, lora_),
               FederationError);
  EXPECT_NO_THROW(link.register_site(fingerprint, 4, federation, lora_));
  stop = true;
  aggregator_thread.join();
}

// The three sites' certificates under a test CA, for secure aggregation.
struct SitePki {
  explicit SitePki(const std::vector<std::string>& ids) {
    root = test::scratch_dir("federation_round_secagg");
    secure::ca_init(root + "/ca", "federation-round-test");
    secure::IssueOptions fast;
    fast.durable = false;
    for (const secure::IssuedNode& node :
         secure::ca_issue_many(root + "/ca", secure::NodeRole::client, ids, root + "/nodes", fast)) {
      const std::string id = node.identity.cert_path.substr(node.identity.cert_path.rfind('/') + 1);
      signers[id.substr(0, id.size() - 4)] = std::make_shared<secagg::KeySigner>(node.identity);
      verifier = std::make_shared<secagg::KeyVerifier>(node.identity);
    }
  }
  ~SitePki() { std::filesystem::remove_all(root); }
  std::string root;
  std::map<std::string, std::shared_ptr<const secagg::KeySigner>> signers;
  std::shared_ptr<const secagg::KeyVerifier> verifier;
};

// Secure aggregation end to end: the aggregator never sees a site's delta,
// yet the new global is the weighted FedAvg of the three, within the
// fixed-point error (2^-25 per coordinate at scale_bits 24).
TEST_F(Federation, UnderSecureAggregationTheGlobalIsTheWeightedFedAvgWithinTheFixedPointError) {
  SitePki pki({"site-a", "site-b", "site-c"});
  net::InprocNetwork network;
  const GlobalAdapters initial = global_adapters_for_model(*model_, lora_, /*seed=*/9, split::all_blocks());
  AggregatorOptions options = aggregator_options(2);
  options.secure_aggregation.enabled = true;
  AggregatorService service(options, initial, quiet);
  const std::vector<SiteReport> reports =
      run_local_sites(service, network, [&](size_t i, FederatedClientOptions& site) {
        site.signer = pki.signers.at(sites_[i].id);
        site.verifier = pki.verifier;
        site.secure.required = true;
      });
  ASSERT_EQ(service.state(), RunState::finished) << service.failure();
  for (size_t i = 0; i < sites_.size(); ++i) {
    ASSERT_EQ(reports[i].rounds.size(), 2u);
    const SiteRound& round = reports[i].rounds[0];
    EXPECT_TRUE(round.accepted) << round.error;
    EXPECT_TRUE(round.secure);
  }
  const RoundSummary summary = service.history().at(0);
  EXPECT_TRUE(summary.failure.empty()) << summary.failure;
  EXPECT_EQ(summary.reported, (std::vector<std::string>{"site-a", "site-b", "site-c"}));
  EXPECT_EQ(summary.num_samples, 4 + 6 + 9);
  // The metrics went masked too: their mean, no site's own.
  EXPECT_TRUE(summary.client_metrics.empty());
  EXPECT_GT(summary.metrics.at("train_loss"), 0.0);
  EXPECT_GT(summary.metrics.at("train_tokens"), 0.0);
  // Round 1 starts from round 0's result (in float32, as the sites receive it).
  NamedTensors after_round0;
  for (const auto& [name, t] : fedavg_of_sites(initial.tensors, 0)) after_round0[name] = t.to(at::kFloat);
  const NamedTensors expected_round1 = fedavg_of_sites(after_round0, 1);
  // Float32 training from a start rounded differently dominates the fixed-point error.
  test::expect_tensors_near(service.global().tensors, expected_round1, 1e-5);
  EXPECT_GT(service.bytes().total_bytes(wire::Direction::received), 0u);
}

// A site that requires secure aggregation takes no part in a plain round.
TEST_F(Federation, ASiteThatRequiresSecureAggregationRefusesAPlainRound) {
  net::InprocNetwork network;
  const GlobalAdapters initial = global_adapters_for_model(*model_, lora_, /*seed=*/9, split::all_blocks());
  AggregatorOptions options = aggregator_options(1);
  options.min_clients = 2;
  options.round_deadline_ms = 1000;   // the round waits for the refusing site until then
  options.on_deadline = OnDeadline::fail;
  AggregatorService service(options, initial, quiet);
  const std::vector<SiteReport> reports = run_local_sites(
      service, network, [](size_t i, FederatedClientOptions& site) { site.secure.required = i == 0; });
  ASSERT_EQ(reports[0].rounds.size(), 1u);
  EXPECT_FALSE(reports[0].rounds[0].trained);
  EXPECT_NE(reports[0].rounds[0].error.find("requires"), std::string::npos) << reports[0].rounds[0].error;
  EXPECT_TRUE(reports[1].rounds.at(0).accepted);
}

}  // namespace
}  // namespace cleave::aggregator
