// The split server's /metrics as Prometheus reads it, behind TLS as `cleave
// split-server` serves: split steps and their latency, the clients with
// state, split inference sessions and the handshakes TLS refused, each
// moving as a site trains, opens a generation session and an expired
// certificate knocks; parsed by the Prometheus Python client's parser.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "cli/secure_channels.h"
#include "lora/adapter_set.h"
#include "metrics/http_endpoint.h"
#include "metrics/registry.h"
#include "model/model_loader.h"
#include "split/split_client.h"
#include "split/split_decoder.h"
#include "split/split_server.h"
#include "tests/secure/tls_fixture.h"
#include "tests/split/split_fixture.h"
#include "tests/support/prometheus_scrape.h"
#include "tests/support/tiny_model.h"
#include "transport/inproc_channel.h"

namespace cleave {
namespace {

using secure::test_support::client_options;
using secure::test_support::LogCapture;
using secure::test_support::Pki;
using secure::test_support::server_options;

TEST(SplitServerMetricsIntegration, PrometheusParsesTheSeriesAsSitesTrainGenerateAndAreRefused) {
  if (!test::have_prometheus_parser()) {
    GTEST_SKIP() << "python3-prometheus-client is not installed (apt-get install python3-prometheus-client)";
  }
  const Pki pki = Pki::create(test::scratch_dir("split_metrics_pki"));
  std::shared_ptr<LlamaModel> model = load_llama(test::write_tiny_model("split_metrics"), BaseQuant::int8);
  lora::LoraOptions lora;
  lora.rank = 2;
  split::SplitServerOptions options;
  options.lora = lora;

  metrics::Registry registry;   // outlives the server and the channel, which record into it
  LogCapture log;
  secure::SecureChannelOptions tls = server_options(pki.server, log);
  tls.on_handshake_refused = cli::handshake_refusal_counter(registry);
  net::InprocNetwork network;
  auto server = std::make_unique<split::SplitServer>(model, options, std::nullopt, Log::silent());
  server->export_metrics(registry);
  test::ServerThread thread(std::move(server),
                            std::make_unique<secure::SecureServerChannel>(network.bind("split"), tls));
  metrics::HttpEndpoint endpoint(registry, ":0");
  endpoint.set_ready();

  const std::map<std::string, double> before = test::scrape(endpoint.port());
  EXPECT_EQ(before.at("cleave_split_steps_total{kind=forward}"), 0);
  EXPECT_EQ(before.at("cleave_split_clients{}"), 0);
  EXPECT_EQ(before.at("cleave_generation_sessions{}"), 0);
  EXPECT_EQ(before.at("cleave_tls_handshakes_refused_total{reason=expired}"), 0);
  EXPECT_EQ(before.at("cleave_tls_handshakes_refused_total{reason=role}"), 0);

  // A site trains two vanilla steps over TLS.
  secure::SecureClientChannel channel(network.connect("split"), client_options(pki.site_a, log));
  split::SplitClientOptions site;
  site.client_id = "site-a";
  site.mode = split::SplitMode::vanilla;
  site.cut_layer = 1;
  lora::AdapterSet adapters =
      lora::AdapterSet::create(*model, lora, 3).subset([](int64_t layer) { return layer < 1; });
  split::SplitTrainStep step(model, adapters, channel, site);
  for (int s = 0; s < 2; ++s) step.forward_backward(test::random_batch(64, 2, 8, s), StepContext{s, 0, 1e-2, 1.0});
  // ... and opens a generation session.
  split::SplitDecoderOptions decoding;
  decoding.split = site;
  split::SplitDecoder decoder(model, nullptr, channel, decoding);
  decoder.open();

  // An expired certificate and a certificate of the wrong role knock.
  for (const secure::TlsIdentity* intruder : {&pki.expired, &pki.aggregator}) {
    secure::SecureClientChannel knocking(network.connect("split"), client_options(*intruder, log));
    knocking.send(secure::test_support::text_bytes("let me in"));
    EXPECT_THROW(
        {
          for (int i = 0; i < 100; ++i) knocking.recv(net::Millis(100));
        },
        secure::SecureChannelError);
  }

  const std::map<std::string, double> after = test::scrape(endpoint.port());
  EXPECT_EQ(after.at("cleave_split_steps_total{kind=forward}"), 2);
  EXPECT_EQ(after.at("cleave_split_step_duration_seconds_count{kind=forward}"), 2);
  EXPECT_GT(after.at("cleave_split_step_duration_seconds_sum{kind=forward}"), 0);
  EXPECT_EQ(after.at("cleave_split_clients{}"), 1);
  EXPECT_EQ(after.at("cleave_generation_sessions{}"), 1);
  EXPECT_GT(after.at("cleave_generation_kv_cache_bytes{}"), 0);
  EXPECT_EQ(after.at("cleave_tls_handshakes_refused_total{reason=expired}"), 1);
  EXPECT_EQ(after.at("cleave_tls_handshakes_refused_total{reason=role}"), 1);
  EXPECT_EQ(after.at("cleave_tls_handshakes_refused_total{reason=revoked}"), 0);
  EXPECT_GT(after.at("cleave_channel_bytes_total{channel=split,direction=in,message=forward}"), 0);
  EXPECT_GT(after.at("cleave_channel_bytes_total{channel=split,direction=out,message=generate_open_reply}"), 0);
  decoder.close();
}

}  // namespace
}  // namespace cleave
