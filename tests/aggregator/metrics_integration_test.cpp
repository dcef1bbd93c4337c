// The aggregator's /metrics as Prometheus reads it: an in-process service
// with its registry served on 127.0.0.1 (port 0), scraped over HTTP before
// and after rounds and parsed by the reference parser of the Prometheus
// Python client (Debian: python3-prometheus-client).
#include <gtest/gtest.h>
#include <httplib.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "aggregator/aggregator_service.h"
#include "metrics/http_endpoint.h"
#include "metrics/registry.h"
#include "tests/aggregator/federation_fixture.h"

namespace cleave::aggregator {
namespace {

// Debian's python3-prometheus-client is for Debian's python3, which a
// python3 earlier on PATH (pyenv, a venv) may not see.
std::string python() { return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }

bool have_prometheus_parser() {
  return std::system((python() + " -c 'import prometheus_client.parser' >/dev/null 2>&1").c_str()) == 0;
}

// Every sample of `exposition` as "name{label=value,...}" -> value, as
// prometheus_client.parser.text_string_to_metric_families reads it (it
// throws, and this fails, on text that is not valid exposition format).
std::map<std::string, double> parse_with_prometheus(const std::string& exposition) {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("cleave-metrics-" + std::to_string(::getpid()) + ".txt");
  std::ofstream(file) << exposition;
  const std::string script =
      "import sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "for family in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
      "    for s in family.samples:\n"
      "        labels = ','.join(k + '=' + v for k, v in sorted(s.labels.items()))\n"
      "        print(s.name + '{' + labels + '} ' + repr(float(s.value)))\n";
  const std::string command = python() + " -c \"" + script + "\" " + file.string() + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string output;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe.release());
  std::filesystem::remove(file);
  EXPECT_EQ(status, 0) << "prometheus_client could not parse:\n" << output << "\n--- exposition ---\n" << exposition;
  std::map<std::string, double> samples;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t space = line.rfind(' ');
    if (space != std::string::npos) samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

std::map<std::string, double> scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  auto response = client.Get("/metrics");
  EXPECT_TRUE(response);
  if (!response) return {};
  EXPECT_EQ(response->status, 200);
  return parse_with_prometheus(response->body);
}

TEST(AggregatorMetricsIntegration, PrometheusParsesTheScrapeAndRoundsMoveTheSeries) {
  if (!have_prometheus_parser()) {
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

  const std::map<std::string, double> before = scrape(endpoint.port());
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
  const std::map<std::string, double> during = scrape(endpoint.port());
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

  const std::map<std::string, double> after = scrape(endpoint.port());
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
  const std::map<std::string, double> done = scrape(endpoint.port());
  EXPECT_EQ(done.at("cleave_rounds_completed_total{}"), 2);
  EXPECT_EQ(done.at("cleave_round_phase{phase=finished}"), 1);
  EXPECT_EQ(done.at("cleave_round_phase{phase=in_round}"), 0);
}

}  // namespace
}  // namespace cleave::aggregator
