#include "metrics/registry.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>
#include <vector>

namespace cleave::metrics {
namespace {

TEST(RegistryTest, RendersCountersAndGaugesWithHelpTypeAndEscapedLabels) {
  Registry registry;
  registry.counter("cleave_updates_rejected_total", "Updates refused, by reason.", {{"reason", "late"}}).inc();
  registry.counter("cleave_updates_rejected_total", "Updates refused, by reason.", {{"reason", "late"}}).inc(2);
  registry.counter("cleave_updates_rejected_total", "Updates refused, by reason.", {{"reason", "a\"b\\c\nd"}});
  registry.gauge("cleave_round", "The open round.\nSecond line \\ here.").set(0.5);
  EXPECT_EQ(registry.render(),
            "# HELP cleave_round The open round.\\nSecond line \\\\ here.\n"
            "# TYPE cleave_round gauge\n"
            "cleave_round 0.5\n"
            "# HELP cleave_updates_rejected_total Updates refused, by reason.\n"
            "# TYPE cleave_updates_rejected_total counter\n"
            "cleave_updates_rejected_total{reason=\"a\\\"b\\\\c\\nd\"} 0\n"
            "cleave_updates_rejected_total{reason=\"late\"} 3\n");
}

TEST(RegistryTest, RendersHistogramBucketsCumulativelyWithInfSumAndCount) {
  Registry registry;
  Histogram& h = registry.histogram("cleave_round_duration_seconds", "Round duration.", {0.1, 1, 10},
                                    {{"service", "aggregator"}});
  h.observe(0.05);
  h.observe(0.1);   // on a bound: counted in it (le)
  h.observe(5);
  h.observe(100);
  EXPECT_EQ(registry.render(),
            "# HELP cleave_round_duration_seconds Round duration.\n"
            "# TYPE cleave_round_duration_seconds histogram\n"
            "cleave_round_duration_seconds_bucket{service=\"aggregator\",le=\"0.1\"} 2\n"
            "cleave_round_duration_seconds_bucket{service=\"aggregator\",le=\"1\"} 2\n"
            "cleave_round_duration_seconds_bucket{service=\"aggregator\",le=\"10\"} 3\n"
            "cleave_round_duration_seconds_bucket{service=\"aggregator\",le=\"+Inf\"} 4\n"
            "cleave_round_duration_seconds_sum{service=\"aggregator\"} 105.15\n"
            "cleave_round_duration_seconds_count{service=\"aggregator\"} 4\n");
}

TEST(RegistryTest, CollectorsAreReadAtEveryScrapeUntilTheirCollectionIsGone) {
  Registry registry;
  double round = 3;
  {
    Collection c = registry.collect("cleave_channel_bytes_total", "Bytes.", Type::counter, [&] {
      return std::vector<Sample>{{{{"direction", "in"}}, round * 10}, {{{"direction", "out"}}, 1e21}};
    });
    EXPECT_EQ(registry.render(),
              "# HELP cleave_channel_bytes_total Bytes.\n"
              "# TYPE cleave_channel_bytes_total counter\n"
              "cleave_channel_bytes_total{direction=\"in\"} 30\n"
              "cleave_channel_bytes_total{direction=\"out\"} 1e+21\n");
    round = 4;
    EXPECT_NE(registry.render().find("{direction=\"in\"} 40\n"), std::string::npos);
    EXPECT_THROW(registry.counter("cleave_channel_bytes_total", "again"), std::invalid_argument);
  }
  EXPECT_EQ(registry.render(), "");
}

TEST(RegistryTest, RefusesBadNamesLabelsAndTypeClashes) {
  Registry registry;
  EXPECT_THROW(registry.counter("1bad", "x"), std::invalid_argument);
  EXPECT_THROW(registry.counter("ok_total", "x", {{"bad-label", "v"}}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("h_seconds", "x", {1, 2}, {{"le", "1"}}), std::invalid_argument);
  registry.counter("ok_total", "x");
  EXPECT_THROW(registry.gauge("ok_total", "x"), std::invalid_argument);
  EXPECT_THROW(registry.counter("ok_total", "x").inc(-1), std::invalid_argument);
  registry.histogram("h_seconds", "x", {1, 2});
  EXPECT_THROW(registry.histogram("h_seconds", "x", {1, 3}), std::invalid_argument);
  EXPECT_THROW(Histogram({2, 1}), std::invalid_argument);
}

TEST(RegistryTest, CountsFromManyThreadsWithoutLosingAny) {
  Registry registry;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        registry.counter("cleave_steps_total", "Steps.", {{"thread", std::to_string(t % 2)}}).inc();
        registry.histogram("cleave_step_seconds", "Step.", duration_buckets()).observe(0.001);
        if (i % 1000 == 0) registry.render();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(registry.counter("cleave_steps_total", "Steps.", {{"thread", "0"}}).value(), 20000);
  const Histogram::Snapshot s = registry.histogram("cleave_step_seconds", "Step.", duration_buckets()).snapshot();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_EQ(s.cumulative.front(), 40000u);
}

}  // namespace
}  // namespace cleave::metrics
