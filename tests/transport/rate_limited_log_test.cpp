#include "transport/rate_limited_log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cleave::net {
namespace {

using Clock = RateLimitedLog::Clock;
using std::chrono::milliseconds;

TEST(RateLimitedLog, PassesABurstThenCountsWhatItSuppresses) {
  std::vector<std::string> lines;
  RateLimitedLog log([&](const std::string& line) { lines.push_back(line); }, "bad frames", 3,
                     std::chrono::seconds(10));
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 1000; ++i) log.log("bad frame " + std::to_string(i), t0 + milliseconds(i));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2], "bad frame 2");
  EXPECT_EQ(log.suppressed_total(), 997u);

  // The next window's first line comes after the count of the last one.
  log.log("bad frame late", t0 + std::chrono::seconds(11));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[3], "(997 more bad frames suppressed in the last 10 s)");
  EXPECT_EQ(lines[4], "bad frame late");
}

TEST(RateLimitedLog, FlushReportsTheCountOnceTheWindowIsOver) {
  std::vector<std::string> lines;
  RateLimitedLog log([&](const std::string& line) { lines.push_back(line); }, "replies lost", 1, milliseconds(500));
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  log.log("a", t0);
  log.log("b", t0 + milliseconds(1));
  log.log("c", t0 + milliseconds(2));
  log.flush(t0 + milliseconds(100));   // the window is still open: nothing yet
  EXPECT_EQ(lines.size(), 1u);
  log.flush(t0 + milliseconds(600));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "(2 more replies lost suppressed in the last 500 ms)");
  log.flush(t0 + milliseconds(2000));   // nothing new: no line
  EXPECT_EQ(lines.size(), 2u);
}

TEST(RateLimitedLog, RefusesAnEmptyBudget) {
  EXPECT_THROW(RateLimitedLog([](const std::string&) {}, "x", 0), std::invalid_argument);
  EXPECT_THROW(RateLimitedLog([](const std::string&) {}, "x", 1, milliseconds(0)), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::net
