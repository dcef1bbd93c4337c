#include "metrics/http_endpoint.h"

#include <gtest/gtest.h>

#include <httplib.h>

#include <stdexcept>

namespace cleave::metrics {
namespace {

TEST(ParseListenTest, BarePortAndColonPortMeanLoopback) {
  EXPECT_EQ(parse_listen("9090").host, "127.0.0.1");
  EXPECT_EQ(parse_listen("9090").port, 9090);
  EXPECT_EQ(parse_listen(":0").host, "127.0.0.1");
  EXPECT_EQ(parse_listen("0.0.0.0:9100").host, "0.0.0.0");
  EXPECT_EQ(parse_listen("0.0.0.0:9100").port, 9100);
  EXPECT_EQ(parse_listen("[::1]:9100").host, "::1");
  EXPECT_THROW(parse_listen("host:"), std::invalid_argument);
  EXPECT_THROW(parse_listen("host:99999"), std::invalid_argument);
  try {
    parse_listen("x:y");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.listen"), std::string::npos);
  }
}

TEST(HttpEndpointTest, ServesMetricsHealthAndReadiness) {
  Registry registry;
  registry.counter("cleave_rounds_completed_total", "Rounds.").inc(2);
  HttpEndpoint endpoint(registry, "127.0.0.1:0");
  ASSERT_GT(endpoint.port(), 0);
  EXPECT_EQ(endpoint.url(), "http://127.0.0.1:" + std::to_string(endpoint.port()));
  httplib::Client client("127.0.0.1", endpoint.port());

  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->get_header_value("Content-Type"), kTextContentType);
  EXPECT_NE(metrics->body.find("cleave_rounds_completed_total 2\n"), std::string::npos);

  auto health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok\n");

  auto ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("starting"), std::string::npos);
  endpoint.set_not_ready("loading the base model");
  ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("loading the base model"), std::string::npos);
  endpoint.set_ready();
  ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);

  auto other = client.Get("/admin");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);

  registry.counter("cleave_rounds_completed_total", "Rounds.").inc();
  metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("cleave_rounds_completed_total 3\n"), std::string::npos);

  endpoint.stop();
  httplib::Client after("127.0.0.1", endpoint.port());
  after.set_connection_timeout(1, 0);
  EXPECT_FALSE(after.Get("/healthz"));
}

TEST(HttpEndpointTest, APortInUseIsAnErrorNamingTheKey) {
  Registry registry;
  HttpEndpoint first(registry, "127.0.0.1:0");
  try {
    HttpEndpoint second(registry, "127.0.0.1:" + std::to_string(first.port()));
    FAIL() << "bound a port in use";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.listen"), std::string::npos) << e.what();
  }
  EXPECT_THROW(HttpEndpoint(registry, "not-a-port"), std::runtime_error);
}

}  // namespace
}  // namespace cleave::metrics
