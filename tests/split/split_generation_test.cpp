// Split inference: a site's SplitDecoder against a split server's generation
// sessions gives the greedy output of local generation with the same
// adapters (float32 codec), feeds the prompt in one exchange, and the server
// bounds, expires and frees its sessions and refuses what it cannot serve.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "lora/adapter_set.h"
#include "metrics/registry.h"
#include "model/generate.h"
#include "model/model_loader.h"
#include "split/split_decoder.h"
#include "split/split_server.h"
#include "tests/split/split_fixture.h"
#include "tests/support/tiny_model.h"
#include "transport/inproc_channel.h"
#include "util/clock.h"

namespace cleave::split {
namespace {

constexpr TokenId kNoEos = -1;

// The server's handle() called in the caller's thread: no server thread, so
// the tests read the server's state without racing it.
class DirectChannel : public net::ClientChannel {
 public:
  explicit DirectChannel(SplitServer& server) : server_(server) {}
  void send(net::Bytes payload) override { reply_ = server_.handle("site-peer", payload); }
  std::optional<net::Bytes> recv(net::Millis) override {
    std::optional<net::Bytes> reply = std::move(reply_);
    reply_.reset();
    return reply;
  }
  void reconnect() override {}
  std::string describe() const override { return "direct://split-server"; }

 private:
  SplitServer& server_;
  std::optional<net::Bytes> reply_;
};

class SplitGeneration : public ::testing::Test {
 protected:
  void SetUp() override {
    LlamaConfig config = test::tiny_config();
    config.n_layers = 4;
    model_ = load_llama(test::write_tiny_model("split_generation", 21, config), BaseQuant::none);
    lora_.rank = 4;
    lora_.alpha = 8;
    adapters_ = lora::AdapterSet::create(*model_, lora_, 5);
    test::randomize_b(adapters_, 6);   // B = 0 would make every adapter a no-op
  }

  SplitDecoderOptions decoder_options(SplitMode mode, int32_t cut, int32_t top = 0) const {
    SplitDecoderOptions o;
    o.split.client_id = "site-a";
    o.split.mode = mode;
    o.split.cut_layer = cut;
    o.split.top_cut = top;
    o.split.timeout_ms = 60000;
    return o;
  }

  // The site keeps the adapters of its blocks, the server those from `min_cut` on.
  lora::AdapterSet site_adapters(const SplitDecoderOptions& o) const {
    const int64_t top = o.split.mode == SplitMode::u_shaped ? o.split.top_cut : model_->n_layers();
    return adapters_.subset([&](int64_t layer) { return layer < o.split.cut_layer || layer >= top; });
  }

  std::unique_ptr<SplitServer> server(int64_t min_cut, GenerationLimits limits = {},
                                      std::shared_ptr<const Clock> clock = nullptr) const {
    SplitServerOptions options;
    options.lora = lora_;
    options.min_cut_layer = min_cut;
    options.generation = limits;
    return std::make_unique<SplitServer>(
        model_, options, adapters_.subset([&](int64_t layer) { return layer >= min_cut; }),
        [](const std::string&) {}, std::move(clock));
  }

  std::shared_ptr<LlamaModel> model_;
  lora::LoraOptions lora_;
  lora::AdapterSet adapters_;
  const std::vector<TokenId> prompt_ = {1, 5, 9, 17, 3, 30};
};

TEST_F(SplitGeneration, GreedyOutputEqualsLocalOverInprocChannel) {
  const std::vector<TokenId> local = generate(*model_, &adapters_, prompt_, kNoEos, SamplingOptions::greedy(12));
  ASSERT_EQ(local.size(), 12u);
  // Without the adapters the output differs, so the comparison below sees them.
  ASSERT_NE(generate(*model_, nullptr, prompt_, kNoEos, SamplingOptions::greedy(12)), local);

  for (const SplitDecoderOptions& o :
       {decoder_options(SplitMode::u_shaped, 1, 3), decoder_options(SplitMode::vanilla, 2)}) {
    SCOPED_TRACE(o.split.mode == SplitMode::u_shaped ? "u_shaped" : "vanilla");
    net::InprocNetwork network;
    test::ServerThread thread(server(1), network.bind("split"));
    auto channel = network.connect("split");
    const lora::AdapterSet site = site_adapters(o);
    SplitDecoder decoder(model_, &site, *channel, o);
    std::vector<TokenId> streamed;
    const std::vector<TokenId> split =
        generate(decoder, prompt_, kNoEos, SamplingOptions::greedy(12), [&](TokenId id) { streamed.push_back(id); });
    EXPECT_EQ(split, local);
    EXPECT_EQ(streamed, split);
  }
}

TEST_F(SplitGeneration, PromptIsPrefilledInOneExchangeThenOnePositionPerStep) {
  auto split_server = server(1);
  DirectChannel channel(*split_server);
  const SplitDecoderOptions o = decoder_options(SplitMode::u_shaped, 1, 3);
  const lora::AdapterSet site = site_adapters(o);
  SplitDecoder decoder(model_, &site, channel, o);
  generate(decoder, prompt_, kNoEos, SamplingOptions::greedy(5));
  std::map<std::string, uint64_t> sent;
  for (const wire::ByteCounter::Row& row : decoder.bytes().rows()) sent[row.message_type] = row.sent_messages;
  EXPECT_EQ(sent["generate_open"], 1u);
  EXPECT_EQ(sent["generate_prefill"], 1u);   // all 6 prompt positions at once
  EXPECT_EQ(sent["generate_step"], 4u);      // the 5th token needs no further logits
  EXPECT_EQ(decoder.requests(), 6u);
  // The server charges the served blocks' work to its forward phase.
  EXPECT_GT(split_server->cost()[metrics::Phase::forward].cpu_seconds, 0.0);
  EXPECT_EQ(split_server->cost()[metrics::Phase::backward].cpu_seconds, 0.0);
  EXPECT_EQ(split_server->generation().count(), 1u);
  decoder.close();
  EXPECT_EQ(split_server->generation().count(), 0u);
  EXPECT_EQ(split_server->generation().kv_bytes(), 0);
}

TEST_F(SplitGeneration, TooManySessionsAreRefusedNamingTheLimit) {
  GenerationLimits limits;
  limits.max_sessions = 1;
  auto split_server = server(1, limits);
  DirectChannel channel(*split_server);
  const SplitDecoderOptions o = decoder_options(SplitMode::vanilla, 1);
  SplitDecoder first(model_, nullptr, channel, o);
  first.open();
  SplitDecoder second(model_, nullptr, channel, o);
  try {
    second.open();
    FAIL() << "a second session was opened past generation_sessions 1";
  } catch (const SplitError& e) {
    EXPECT_NE(std::string(e.what()).find("split_server.generation_sessions"), std::string::npos) << e.what();
  }
  first.close();
  EXPECT_NO_THROW(second.open());   // the closed session's place is free again
}

TEST_F(SplitGeneration, KvCacheBytesAreBounded) {
  GenerationLimits limits;
  // One session of the 3 served blocks and 16 positions fits, a second does not.
  limits.max_kv_bytes = KvCache::bytes_for(model_->config(), 3, 16, 4) + 1;
  metrics::Registry registry;   // outlives the server, whose series it holds
  auto split_server = server(1, limits);
  split_server->export_metrics(registry);
  DirectChannel channel(*split_server);
  SplitDecoderOptions o = decoder_options(SplitMode::vanilla, 1);
  o.capacity = 16;
  SplitDecoder first(model_, nullptr, channel, o);
  first.open();
  const int64_t reserved = KvCache::bytes_for(model_->config(), 3, 16, 4);
  EXPECT_EQ(first.server_kv_bytes(), reserved);
  // Operators see the sessions and what they reserve (Prometheus gauges).
  const std::string scrape = registry.render();
  EXPECT_NE(scrape.find("\ncleave_generation_sessions 1\n"), std::string::npos) << scrape;
  EXPECT_NE(scrape.find("\ncleave_generation_kv_cache_bytes " + std::to_string(reserved) + "\n"), std::string::npos)
      << scrape;
  SplitDecoder second(model_, nullptr, channel, o);
  try {
    second.open();
    FAIL() << "the KV cache limit let a second session in";
  } catch (const SplitError& e) {
    EXPECT_NE(std::string(e.what()).find("split_server.generation_kv_bytes"), std::string::npos) << e.what();
  }
  first.close();
  EXPECT_NE(registry.render().find("\ncleave_generation_sessions 0\n"), std::string::npos) << registry.render();
}

TEST_F(SplitGeneration, IdleSessionsExpireOnTheServersClock) {
  GenerationLimits limits;
  limits.idle_timeout_ms = 1000;
  auto clock = std::make_shared<ManualClock>();
  auto split_server = server(1, limits, clock);
  DirectChannel channel(*split_server);
  const SplitDecoderOptions o = decoder_options(SplitMode::u_shaped, 1, 3);
  SplitDecoder decoder(model_, nullptr, channel, o);
  decoder.feed(prompt_);
  clock->advance(1000);   // idle exactly the timeout: kept
  decoder.feed({4});
  clock->advance(1001);
  try {
    decoder.feed({7});
    FAIL() << "a session idle past generation_idle_ms answered";
  } catch (const SplitError& e) {
    EXPECT_NE(std::string(e.what()).find("no generation session"), std::string::npos) << e.what();
  }
  EXPECT_EQ(split_server->generation().count(), 0u);
  EXPECT_EQ(split_server->generation().kv_bytes(), 0);
}

TEST_F(SplitGeneration, MissingServerAdaptersAreNamed) {
  auto split_server = server(2);   // adapters for blocks 2 and 3 only
  DirectChannel channel(*split_server);
  SplitDecoderOptions o = decoder_options(SplitMode::u_shaped, 2, 3);
  o.expected_server_adapters = lora::adapted_projections(*model_, lora_, [](int64_t l) { return l == 2; });
  SplitDecoder fits(model_, nullptr, channel, o);
  EXPECT_NO_THROW(fits.open());

  // A server whose adapters cover q and v only, against a site whose lora.targets are all seven.
  lora::LoraOptions attention_only = lora_;
  attention_only.targets = {"q", "v"};
  auto q_v_server = std::make_unique<SplitServer>(
      model_,
      [&] {
        SplitServerOptions options;
        options.lora = attention_only;
        options.min_cut_layer = 2;
        return options;
      }(),
      lora::AdapterSet::create(*model_, attention_only, 5, [](int64_t layer) { return layer >= 2; }),
      [](const std::string&) {});
  DirectChannel q_v_channel(*q_v_server);
  SplitDecoder wants_all(model_, nullptr, q_v_channel, o);
  try {
    wants_all.open();
    FAIL() << "a session was opened without the adapters the site expects";
  } catch (const SplitError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("no adapters for blk.2.attn_k.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("lora.targets"), std::string::npos) << message;
  }
}

TEST_F(SplitGeneration, SflV1SitesCanGenerateWithTheirOwnCopy) {
  auto split_server = server(1);
  DirectChannel channel(*split_server);
  SplitDecoderOptions o = decoder_options(SplitMode::u_shaped, 1, 3);
  o.server_adapters = GenerationAdapters::own;
  SplitDecoder before_hello(model_, nullptr, channel, o);
  try {
    before_hello.open();
    FAIL() << "a site without a copy on the server got a session with its own adapters";
  } catch (const SplitError& e) {
    EXPECT_NE(std::string(e.what()).find("holds no adapter copy of site-a"), std::string::npos) << e.what();
  }
  // After a Hello the site has its copy (here still the global adapters): the same text as local.
  Hello hello{"site-a", model_->base_fingerprint(), static_cast<uint8_t>(SplitMode::u_shaped), 1, 3, 0, 0};
  ASSERT_EQ(wire::peek(split_server->handle("peer", wire::pack(static_cast<uint16_t>(MessageType::hello), hello))).type,
            static_cast<uint16_t>(MessageType::hello_reply));
  const lora::AdapterSet site = site_adapters(o);
  SplitDecoder decoder(model_, &site, channel, o);
  EXPECT_EQ(generate(decoder, prompt_, kNoEos, SamplingOptions::greedy(6)),
            generate(*model_, &adapters_, prompt_, kNoEos, SamplingOptions::greedy(6)));
}

TEST_F(SplitGeneration, BadSessionIdsAndOtherSitesSessionsAreRefused) {
  auto split_server = server(1);
  DirectChannel channel(*split_server);
  SplitDecoder decoder(model_, nullptr, channel, decoder_options(SplitMode::vanilla, 1));
  decoder.feed(prompt_);

  auto ask = [&](MessageType type, const GenerateInput& input) {
    const net::Bytes reply = split_server->handle("peer", wire::pack(static_cast<uint16_t>(type), input));
    EXPECT_EQ(wire::peek(reply).type, static_cast<uint16_t>(MessageType::error));
    return wire::unpack<ErrorReply>(reply, static_cast<uint16_t>(MessageType::error), 1 << 20);
  };
  GenerateInput input;
  input.client_id = "site-a";
  input.session = 12345;   // never opened
  input.position = 0;
  const std::vector<float> zeros(static_cast<size_t>(model_->config().dim), 0.0f);
  input.hidden = wire::encode(zeros.data(), {1, 1, model_->config().dim}, wire::WireDType::F32);
  ErrorReply error = ask(MessageType::generate_prefill, input);
  EXPECT_EQ(error.code, static_cast<uint8_t>(ErrorCode::unknown_session));
  EXPECT_NE(error.message.find("no generation session 12345 of site-a"), std::string::npos) << error.message;

  // Another site's session is answered like one that does not exist.
  input.client_id = "site-b";
  input.session = decoder.session();
  input.position = static_cast<uint32_t>(prompt_.size());
  error = ask(MessageType::generate_step, input);
  EXPECT_EQ(error.code, static_cast<uint8_t>(ErrorCode::unknown_session));
  EXPECT_NE(error.message.find("of site-b"), std::string::npos) << error.message;

  // Closing a session id that is not open is refused too.
  const net::Bytes close_reply = split_server->handle(
      "peer", wire::pack(static_cast<uint16_t>(MessageType::generate_close), GenerateClose{"site-b", 777}));
  EXPECT_EQ(wire::peek(close_reply).type, static_cast<uint16_t>(MessageType::error));
  EXPECT_EQ(split_server->generation().count(), 1u);
}

TEST(GenerationLimits, BadValuesNameTheirKey) {
  SplitServerOptions options;
  options.generation.max_sessions = 0;
  try {
    options.validate();
    FAIL() << "generation_sessions 0 was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("split_server.generation_sessions"), std::string::npos) << e.what();
  }
  options.generation = GenerationLimits{};
  options.generation.idle_timeout_ms = 0;
  EXPECT_THROW(options.validate(), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::split
