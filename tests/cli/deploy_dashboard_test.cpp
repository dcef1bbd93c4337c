// deploy/grafana-dashboard.json: a Grafana dashboard whose every query names
// series the services export, and that charts every series they export (so a
// renamed or a new metric fails here until the dashboard follows).
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

#include "aggregator/aggregator_metrics.h"
#include "cli/secure_channels.h"
#include "cli/service_runtime.h"
#include "metrics/registry.h"
#include "split/split_metrics.h"
#include "util/json.h"
#include "wire/frame.h"

namespace cleave {
namespace {

// The metric family names of a scrape: each "# TYPE <name> <type>" line.
std::set<std::string> families(const std::string& exposition) {
  std::set<std::string> names;
  const std::regex type_line(R"(# TYPE (\S+) \S+)");
  for (std::sregex_iterator it(exposition.begin(), exposition.end(), type_line), end; it != end; ++it) {
    names.insert((*it)[1].str());
  }
  return names;
}

// What the aggregator, a split server and a site export (each its own
// process and registry), every series present: the DP epsilon and the
// checkpoint age once a round has closed under DP.
std::set<std::string> exported_families() {
  std::set<std::string> names;
  wire::ByteCounter aggregator_bytes, split_bytes;
  aggregator_bytes.add("register", wire::Direction::received, 100);
  split_bytes.add("forward", wire::Direction::received, 100);
  {
    metrics::Registry registry;
    aggregator::AggregatorMetrics aggregator(registry, aggregator_bytes);
    aggregator.round_completed(12.5, 0.8);
    aggregator.checkpoint_written();
    aggregator.rejected(aggregator::RejectReason::late);
    names.merge(families(registry.render()));
  }
  {
    metrics::Registry registry;
    split::SplitServerMetrics split_server(registry, split_bytes);
    split_server.step("forward", 0.01);
    names.merge(families(registry.render()));
  }
  {
    metrics::Registry registry;   // the aggregator's and the split server's TLS endpoints
    cli::handshake_refusal_counter(registry)("expired");
    names.merge(families(registry.render()));
  }
  metrics::Registry registry;
  cli::site_rounds_trained_counter(registry).inc();
  names.merge(families(registry.render()));
  return names;
}

// The cleave_ series a PromQL expression reads (histogram parts as their family).
std::set<std::string> queried_families(const std::string& expr) {
  std::set<std::string> names;
  const std::regex metric(R"(cleave_[a-z_]+)");
  for (std::sregex_iterator it(expr.begin(), expr.end(), metric), end; it != end; ++it) {
    std::string name = it->str();
    for (const char* part : {"_bucket", "_sum", "_count"}) {
      const std::string suffix(part);
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          name.find("_seconds") != std::string::npos) {
        name.resize(name.size() - suffix.size());
      }
    }
    names.insert(name);
  }
  return names;
}

TEST(DeployDashboard, EveryQueryReadsAnExportedSeriesAndEverySeriesIsCharted) {
  const std::string path = std::string(CLEAVE_SOURCE_DIR) + "/deploy/grafana-dashboard.json";
  const json::Value dashboard = json::parse_file(path);
  ASSERT_TRUE(dashboard.is_object());
  ASSERT_NE(dashboard.find("schemaVersion"), nullptr) << "not a Grafana dashboard model";
  ASSERT_NE(dashboard.find("panels"), nullptr);

  const std::set<std::string> exported = exported_families();
  ASSERT_GE(exported.size(), 14u) << "the registry lost series";
  std::set<std::string> charted;
  size_t queries = 0;
  for (const json::Value& panel : dashboard.find("panels")->as_array()) {
    const json::Value* targets = panel.find("targets");
    if (!targets) continue;
    const std::string title = panel.find("title")->as_string();
    for (const json::Value& target : targets->as_array()) {
      const std::string expr = target.find("expr")->as_string();
      ++queries;
      const std::set<std::string> read = queried_families(expr);
      EXPECT_FALSE(read.empty()) << title << ": " << expr << " reads no cleave series";
      for (const std::string& name : read) {
        EXPECT_TRUE(exported.count(name)) << title << " queries " << name << ", which no service exports";
        charted.insert(name);
      }
    }
  }
  EXPECT_GE(queries, 18u);
  for (const std::string& name : exported) {
    EXPECT_TRUE(charted.count(name)) << name << " is exported but no panel of " << path << " charts it";
  }
}

}  // namespace
}  // namespace cleave
