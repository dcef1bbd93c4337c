// A site's own /metrics and /readyz as `cleave client` serves them in a
// federation of separate processes over TLS, scraped while it trains and
// parsed by the Prometheus Python client's parser: the rounds it trained and
// the bytes on each of its channels (split server, aggregator) move.
#include <gtest/gtest.h>
#include <httplib.h>

#include <map>
#include <string>

#include "tests/cli/process_federation.h"
#include "tests/support/prometheus_scrape.h"

namespace cleave {
namespace {

TEST(ClientMetricsIntegration, ASitesEndpointCountsItsRoundsAndBothChannelsWhileItTrains) {
  if (!test::have_prometheus_parser()) {
    GTEST_SKIP() << "python3-prometheus-client is not installed (apt-get install python3-prometheus-client)";
  }
  test::FederationShape shape(3, 40);   // rounds long enough to scrape in
  shape.site_metrics = true;
  test::ProcessFederation federation("cli_client_metrics", shape);
  federation.start_all();
  const auto port = federation.site(0).wait_for("metrics on http://127\\.0\\.0\\.1:([0-9]+)", test::kStartTimeout);
  ASSERT_TRUE(port) << federation.site(0).output();
  WAIT_FOR(federation.site(0), "round 0 done here");

  httplib::Client client("127.0.0.1", std::stoi(*port));
  const auto ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;   // registered with the aggregator
  const std::map<std::string, double> after_one = test::scrape(std::stoi(*port));
  EXPECT_GE(after_one.at("cleave_site_rounds_trained_total{}"), 1);
  const std::string split_up = "cleave_channel_bytes_total{channel=split,direction=out,message=forward}";
  const std::string update_up = "cleave_channel_bytes_total{channel=aggregator,direction=out,message=update}";
  EXPECT_GT(after_one.at(split_up), 0);
  ASSERT_TRUE(after_one.count(update_up)) << "the site's update to the aggregator";
  EXPECT_GT(after_one.at(update_up), 0);

  WAIT_FOR(federation.site(0), "round 1 done here");
  const std::map<std::string, double> after_two = test::scrape(std::stoi(*port));
  EXPECT_GT(after_two.at("cleave_site_rounds_trained_total{}"), after_one.at("cleave_site_rounds_trained_total{}"));
  EXPECT_GT(after_two.at(split_up), after_one.at(split_up));
  EXPECT_GT(after_two.at(update_up), after_one.at(update_up));
  federation.expect_finished();
}

}  // namespace
}  // namespace cleave
