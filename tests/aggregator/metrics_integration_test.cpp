// The aggregator's /metrics as Prometheus reads it: an in-process service
// with its registry served on 127.0.0.1 (port 0), scraped over HTTP before
// and after rounds and parsed by the reference parser of the Prometheus
// Python client (Debian: python3-prometheus-client).
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "aggregator/aggregator_service.h"
#include "metrics/http_endpoint.h"
#include "metrics/registry.h"
#include "tests/aggregator/federation_fixture.h"
#include "tests/support/prometheus_scrape.h"

namespace cleave::aggregator {
namespace {

TEST(AggregatorMetricsIntegration, PrometheusParsesTheScrapeAndRoundsMoveTheSeries) {
  if (!test::have_prometheus_parser()) {
    GTEST_SKIP() << "python3-prometheus-client is not installed (apt-get install python3-prometheus-client)";
  }
  AggregatorOptions options;
  options.rounds = 2;
  options.clients_per_round = 1;
  options.min_clients = 1;
  options.round_deadline_ms = 1000;
  options.poll_interval_ms = 5;
  options.seed = 17;
  metrics::Registry registry;   // outlives the service, which records into it
  test::ServiceHarness h(options);
  h.service.export_metrics(registry);
  metrics::HttpEndpoint endpoint(registry, ":0");
  endpoint.set_ready();

  const std::map<std::string, double> before = test::scrape(endpoint.port());
  EXPECT_EQ(before.at("cleave_rounds_completed_total{}"), 0);
  EXPECT_EQ(before.at("cleave_round{}"), 0);
  EXPECT_EQ(before.at("cleave_sites_registered{}"), 0);
  EXPECT_EQ(before.at("cleave_round_phase{phase=waiting_for_clients}"), 1);
  EXPECT_EQ(before.at("cleave_round_duration_seconds_count{}"), 0);
  EXPECT_EQ(before.at("cleave_updates_rejected_total{reason=late}"), 0);

  test::ScriptedSite site(h.service, "a");
  site.register_site();
  const NamedTensors global = h.service.global().tensors;
  site.take_assignment(global, 0);
  const std::map<std::string, double> during = test::scrape(endpoint.port());
  EXPECT_EQ(during.at("cleave_round_phase{phase=in_round}"), 1);
  EXPECT_EQ(during.at("cleave_sites_registered{}"), 1);
  EXPECT_EQ(during.at("cleave_sites_sampled{}"), 1);
  EXPECT_EQ(during.at("cleave_sites_reported{}"), 0);

  h.clock->advance(250);   // the round takes 0.25 s on the service's clock
  ASSERT_TRUE(site.send_update(0, test::seeded_delta(global, 1, 0.0), 3, {{"train_loss", 1.0}})
                  .as<UpdateAck>(FederationMessage::update_ack)
                  .accepted);
  // A second update for the closed round: rejected as late.
  EXPECT_FALSE(site.send_update(0, test::seeded_delta(global, 1, 0.0), 3, {{"train_loss", 1.0}})
                   .as<UpdateAck>(FederationMessage::update_ack)
                   .accepted);

  const std::map<std::string, double> after = test::scrape(endpoint.port());
  EXPECT_EQ(after.at("cleave_rounds_completed_total{}"), 1);
  EXPECT_EQ(after.at("cleave_round{}"), 1);
  EXPECT_EQ(after.at("cleave_round_duration_seconds_count{}"), 1);
  EXPECT_DOUBLE_EQ(after.at("cleave_round_duration_seconds_sum{}"), 0.25);
  EXPECT_EQ(after.at("cleave_round_duration_seconds_bucket{le=0.25}"), 1);
  EXPECT_EQ(after.at("cleave_round_duration_seconds_bucket{le=0.1}"), 0);
  EXPECT_EQ(after.at("cleave_updates_rejected_total{reason=late}"), 1);
  EXPECT_GT(after.at("cleave_channel_bytes_total{channel=federation,direction=in,message=update}"), 0);
  EXPECT_GT(after.at("cleave_channel_bytes_total{channel=federation,direction=out,message=update_ack}"), 0);

  site.take_assignment(global, 1);
  ASSERT_TRUE(site.send_update(1, test::seeded_delta(global, 2, 0.0), 3, {{"train_loss", 1.0}})
                  .as<UpdateAck>(FederationMessage::update_ack)
                  .accepted);
  const std::map<std::string, double> done = test::scrape(endpoint.port());
  EXPECT_EQ(done.at("cleave_rounds_completed_total{}"), 2);
  EXPECT_EQ(done.at("cleave_round_phase{phase=finished}"), 1);
  EXPECT_EQ(done.at("cleave_round_phase{phase=in_round}"), 0);
}

}  // namespace
}  // namespace cleave::aggregator
