// Multi-hop split (split_server.next): a chain of split servers over
// tcp://127.0.0.1 gives the loss and every adapter gradient of the one-hop
// split step and of the unsplit step, vanilla and u_shaped, at any length;
// round closes reach every hop; greedy split generation over two hops equals
// local generation; and the hop's settings are checked.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "client/train_step.h"
#include "model/generate.h"
#include "model/llama_model.h"
#include "metrics/registry.h"
#include "model/model_loader.h"
#include "split/split_client.h"
#include "split/split_decoder.h"
#include "split/split_server.h"
#include "tests/split/split_fixture.h"
#include "tests/support/expect.h"
#include "tests/support/tiny_model.h"
#include "transport/zmq_channel.h"

namespace cleave::split {
namespace {

using Grads = std::map<std::string, at::Tensor>;   // "<base>.a" / "<base>.b"

void add_grads(const lora::AdapterSet& adapters, Grads& grads) {
  for (const auto& [name, pair] : adapters.pairs()) {
    ASSERT_TRUE(pair.a.grad().defined()) << name;
    grads[name + ".a"] = pair.a.grad().clone();
    grads[name + ".b"] = pair.b.grad().clone();
  }
}

// The hops of a chain, each serving on its own thread: hop i runs blocks
// [cuts[i], cuts[i + 1]) (the last: up to `top`, top_cut or L) with
// `initial`'s adapters of those blocks, and forwards to hop i + 1.
class Chain {
 public:
  // `registry`: the first hop's metrics.
  Chain(std::shared_ptr<const LlamaModel> model, const lora::AdapterSet& initial, const std::vector<int32_t>& cuts,
        int64_t top, metrics::Registry* registry = nullptr) {
    for (size_t i = cuts.size(); i-- > 0;) {   // the last hop first: the one before it connects to it
      const int64_t begin = cuts[i];
      const int64_t end = i + 1 < cuts.size() ? cuts[i + 1] : top;
      SplitServerOptions options;
      options.lora = initial.options();
      options.min_cut_layer = begin;
      if (i + 1 < cuts.size()) {
        options.next.address = hops_.front()->endpoint();
        options.next.cut_layer = cuts[i + 1];
      }
      auto server = std::make_unique<SplitServer>(
          model, options, initial.subset([&](int64_t layer) { return layer >= begin && layer < end; }),
          [](const std::string&) {});
      if (i + 1 < cuts.size()) server->connect_next_hop(net::zmq_connect(hops_.front()->endpoint()));
      if (i == 0 && registry) server->export_metrics(*registry);
      hops_.insert(hops_.begin(), std::make_unique<test::ServerThread>(std::move(server)));
    }
  }
  std::string endpoint() const { return hops_.front()->endpoint(); }
  SplitServer& hop(size_t i) { return hops_.at(i)->server(); }
  size_t size() const { return hops_.size(); }

 private:
  std::vector<std::unique_ptr<test::ServerThread>> hops_;   // the first hop first
};

struct Step {
  double loss = 0;
  Grads grads;   // every side's
};

class MultiHop : public ::testing::Test {
 protected:
  void SetUp() override {
    LlamaConfig config = test::tiny_config();
    config.n_layers = 4;
    model_ = load_llama(test::write_tiny_model("multi_hop", 11, config), BaseQuant::int8);
    lora::LoraOptions options;
    options.rank = 4;
    adapters_ = lora::AdapterSet::create(*model_, options, 5);
    test::randomize_b(adapters_, 6);
    batch_ = test::random_batch(64, 3, 12, 7);
  }

  Step unsplit() const {
    lora::AdapterSet adapters = adapters_.clone();
    LocalTrainStep step(model_, adapters);
    Step s;
    s.loss = step.forward_backward(batch_, StepContext{}).loss;
    add_grads(adapters, s.grads);
    return s;
  }

  // One step (lr 0: gradients only) of a site against a chain from `cuts[0]`.
  Step split(SplitClientOptions options, const std::vector<int32_t>& cuts) const {
    options.cut_layer = cuts.front();
    const int64_t top = options.mode == SplitMode::u_shaped ? options.top_cut : model_->n_layers();
    lora::AdapterSet site = adapters_.subset([&](int64_t layer) { return layer < cuts.front() || layer >= top; });
    Chain chain(model_, adapters_, cuts, top);
    auto channel = net::zmq_connect(chain.endpoint());
    SplitTrainStep step(model_, site, *channel, options);
    Step s;
    s.loss = step.forward_backward(batch_, StepContext{0, 0, 0.0, 0.0}).loss;
    add_grads(site, s.grads);
    for (size_t i = 0; i < chain.size(); ++i) add_grads(chain.hop(i).adapters_for(options.client_id), s.grads);
    return s;
  }

  static void expect_matches(const Step& run, const Step& reference, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_NEAR(run.loss, reference.loss, 1e-5 * std::abs(reference.loss));
    ASSERT_EQ(run.grads.size(), reference.grads.size()) << "every adapter is trained on exactly one side";
    for (const auto& [name, grad] : reference.grads) {
      ASSERT_TRUE(run.grads.count(name)) << name;
      EXPECT_LE(test::relative_error(run.grads.at(name), grad), 1e-5) << name;
    }
  }

  std::shared_ptr<LlamaModel> model_;
  lora::AdapterSet adapters_;
  data::Batch batch_;
};

TEST_F(MultiHop, VanillaChainsGiveTheOneHopAndUnsplitLossAndGradients) {
  SplitClientOptions options;
  options.mode = SplitMode::vanilla;
  const Step reference = unsplit();
  const Step one_hop = split(options, {1});
  expect_matches(one_hop, reference, "one hop against unsplit");
  expect_matches(split(options, {1, 2}), one_hop, "two hops against one hop");
  expect_matches(split(options, {1, 2}), reference, "two hops against unsplit");
  expect_matches(split(options, {1, 2, 3}), reference, "three hops against unsplit");
}

TEST_F(MultiHop, UShapedChainsGiveTheOneHopAndUnsplitLossAndGradients) {
  SplitClientOptions options;
  options.mode = SplitMode::u_shaped;
  options.top_cut = 3;
  const Step reference = unsplit();
  const Step one_hop = split(options, {1});
  expect_matches(one_hop, reference, "one hop against unsplit");
  const Step two_hops = split(options, {1, 2});
  expect_matches(two_hops, one_hop, "two hops against one hop");
  expect_matches(two_hops, reference, "two hops against unsplit");
}

// A round closed at the first hop closes at every hop (SFL-V1: each averages
// its own copies), the last hop first.
TEST_F(MultiHop, ARoundClosedAtTheFirstHopClosesAtEveryHop) {
  SplitClientOptions options;
  options.mode = SplitMode::u_shaped;
  options.top_cut = 3;
  options.cut_layer = 1;
  metrics::Registry registry;
  Chain chain(model_, adapters_, {1, 2}, 3, &registry);
  lora::AdapterSet site = adapters_.subset([](int64_t layer) { return layer < 1 || layer >= 3; });
  auto channel = net::zmq_connect(chain.endpoint());
  SplitTrainStep step(model_, site, *channel, options);
  step.forward_backward(batch_, StepContext{0, 0, 1e-2, 0.0});
  // The first hop counts each channel on its own: the sites' and the next hop's.
  const std::string scraped = registry.render();
  EXPECT_CONTAINS(scraped, "cleave_channel_bytes_total{channel=\"split\",direction=\"in\",message=\"forward\"}");
  EXPECT_CONTAINS(scraped, "cleave_channel_bytes_total{channel=\"next_hop\",direction=\"out\",message=\"forward\"}");
  EXPECT_CONTAINS(scraped, "cleave_channel_bytes_total{channel=\"next_hop\",direction=\"in\",message=\"backward_reply\"}");
  EXPECT_GT(chain.hop(0).next_hop_bytes()->total_bytes(wire::Direction::sent), 0u);
  const at::Tensor before = chain.hop(1).global_adapters().pairs().begin()->second.b.clone();
  EXPECT_EQ(step.end_round(0, RoundSites{{"client-0"}, {}}), 1u);
  for (size_t i = 0; i < chain.size(); ++i) EXPECT_EQ(chain.hop(i).round(), 1u) << "hop " << i;
  // The last hop's global adapters are its site copy's, trained by the step.
  EXPECT_FALSE(at::equal(chain.hop(1).global_adapters().pairs().begin()->second.b, before));
  for (size_t i = 0; i < chain.size(); ++i) {   // hop i holds block i + 1 alone
    for (const auto& [name, pair] : chain.hop(i).global_adapters().pairs()) {
      EXPECT_EQ(lora::layer_of(name), static_cast<int64_t>(i) + 1) << name;
    }
  }
}

TEST_F(MultiHop, GreedySplitGenerationOverTwoHopsEqualsLocal) {
  const std::vector<TokenId> prompt = {1, 5, 9, 17, 3, 30};
  constexpr TokenId kNoEos = -1;
  const std::vector<TokenId> local = generate(*model_, &adapters_, prompt, kNoEos, SamplingOptions::greedy(10));
  ASSERT_NE(generate(*model_, nullptr, prompt, kNoEos, SamplingOptions::greedy(10)), local);
  for (const SplitMode mode : {SplitMode::u_shaped, SplitMode::vanilla}) {
    SCOPED_TRACE(mode == SplitMode::u_shaped ? "u_shaped" : "vanilla");
    SplitDecoderOptions o;
    o.split.client_id = "site-a";
    o.split.mode = mode;
    o.split.cut_layer = 1;
    o.split.top_cut = 3;
    const int64_t top = mode == SplitMode::u_shaped ? 3 : model_->n_layers();
    const lora::AdapterSet site = adapters_.subset([&](int64_t layer) { return layer < 1 || layer >= top; });
    Chain chain(model_, adapters_, {1, 2}, top);
    auto channel = net::zmq_connect(chain.endpoint());
    SplitDecoder decoder(model_, &site, *channel, o);
    EXPECT_EQ(generate(decoder, prompt, kNoEos, SamplingOptions::greedy(10)), local);
    EXPECT_EQ(chain.hop(0).generation().count(), 1u);
    EXPECT_EQ(chain.hop(1).generation().count(), 1u);
    decoder.close();
    EXPECT_EQ(chain.hop(0).generation().count(), 0u);
    EXPECT_EQ(chain.hop(1).generation().count(), 0u);   // the close reached the next hop
  }
}

TEST_F(MultiHop, ASiteWhoseBlocksDoNotReachTheNextHopIsRefused) {
  SplitClientOptions options;
  options.mode = SplitMode::u_shaped;
  options.cut_layer = 2;   // at the next hop's cut: nothing for the first hop to run
  options.top_cut = 3;
  Chain chain(model_, adapters_, {1, 2}, 3);
  lora::AdapterSet site = adapters_.subset([](int64_t layer) { return layer < 2 || layer >= 3; });
  auto channel = net::zmq_connect(chain.endpoint());
  SplitTrainStep step(model_, site, *channel, options);
  try {
    step.connect();
    FAIL() << "expected a refusal";
  } catch (const SplitError& e) {
    EXPECT_CONTAINS(e.what(), "where the next split server of this chain takes over");
  }
}

TEST(MultiHopOptions, TheNextHopsCutMustBeAboveThisServersBlocks) {
  NextHopOptions next;
  next.address = "tcp://127.0.0.1:1";
  next.cut_layer = 1;
  EXPECT_THROW(next.validate(/*min_cut_layer=*/1, /*n_layers=*/4), std::invalid_argument);
  next.cut_layer = 4;
  EXPECT_THROW(next.validate(1, 4), std::invalid_argument);
  next.cut_layer = 2;
  EXPECT_NO_THROW(next.validate(1, 4));
  next.address.clear();
  EXPECT_THROW(next.validate(1, 4), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::split
