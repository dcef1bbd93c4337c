#include "util/log.h"

#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace cleave {
namespace {

// Every line a log passed, with its level.
struct Collected {
  std::vector<std::pair<LogLevel, std::string>> lines;
  Log log(LogLevel min_level) {
    return Log([this](LogLevel level, const std::string& line) { lines.emplace_back(level, line); }, min_level);
  }
};

TEST(Log, PassesItsLevelAndAboveOnly) {
  Collected got;
  const Log log = got.log(LogLevel::info);
  log.debug("per-step detail");
  log.info("round 1 closed");
  log.warning("retrying");
  log.error("the run failed");
  ASSERT_EQ(got.lines.size(), 3u);
  EXPECT_EQ(got.lines[0], std::make_pair(LogLevel::info, std::string("round 1 closed")));
  EXPECT_EQ(got.lines[1], std::make_pair(LogLevel::warning, std::string("retrying")));
  EXPECT_EQ(got.lines[2], std::make_pair(LogLevel::error, std::string("the run failed")));
}

TEST(Log, AtWarningDropsInfoAndAtDebugPassesEverything) {
  Collected warning_up, everything;
  const Log quiet = warning_up.log(LogLevel::warning);
  const Log verbose = everything.log(LogLevel::debug);
  for (const Log* log : {&quiet, &verbose}) {
    log->debug("d");
    log->info("i");
    log->warning("w");
  }
  ASSERT_EQ(warning_up.lines.size(), 1u);
  EXPECT_EQ(warning_up.lines[0].second, "w");
  EXPECT_EQ(everything.lines.size(), 3u);
  EXPECT_FALSE(quiet.passes(LogLevel::info));
  EXPECT_TRUE(quiet.passes(LogLevel::error));
}

TEST(Log, CopiesShareTheSinkAndWithLevelChangesOnlyTheCopy) {
  Collected got;
  const Log info = got.log(LogLevel::info);
  const Log debug = info.with_level(LogLevel::debug);
  debug.debug("seen");
  info.debug("not seen");
  ASSERT_EQ(got.lines.size(), 1u);
  EXPECT_EQ(got.lines[0].second, "seen");
  EXPECT_EQ(info.min_level(), LogLevel::info);
}

TEST(Log, PrefixedNamesTheRoleAndKeepsTheLevel) {
  Collected got;
  const Log site = got.log(LogLevel::info).prefixed("site: ");
  site.warning("round 2: no reply");
  site.debug("dropped");
  ASSERT_EQ(got.lines.size(), 1u);
  EXPECT_EQ(got.lines[0], std::make_pair(LogLevel::warning, std::string("site: round 2: no reply")));
}

TEST(Log, ALineSinkGetsTheTextAndAnEmptyFunctionIsSilent) {
  std::vector<std::string> lines;
  const Log log = [&](const std::string& line) { lines.push_back(line); };   // info and above
  log.info("hello");
  log.debug("hidden");
  EXPECT_EQ(lines, std::vector<std::string>{"hello"});

  const Log empty = std::function<void(const std::string&)>();
  EXPECT_FALSE(empty.passes(LogLevel::error));
  empty.error("nowhere");   // no throw
  void (*no_function)(const std::string&) = nullptr;
  EXPECT_FALSE(Log(no_function).passes(LogLevel::error));
  EXPECT_FALSE(Log::silent().passes(LogLevel::error));
  EXPECT_TRUE(Log([](const std::string&) {}).passes(LogLevel::info));   // a lambda is never empty
}

TEST(Log, AStreamLineHasTheTimeTheLevelAndTheSource) {
  std::ostringstream out;
  const Log log = Log::to_stream(out, "aggregator", LogLevel::info);
  log.warning("extending the round");
  log.debug("not written");
  EXPECT_TRUE(std::regex_match(out.str(), std::regex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z WARNING aggregator: "
                                                     "extending the round\n")))
      << out.str();
  std::ostringstream bare;
  Log::to_stream(bare, "").info("x");
  EXPECT_TRUE(std::regex_match(bare.str(), std::regex("\\S+ INFO x\n"))) << bare.str();
}

TEST(Log, LinesFromManyThreadsComeOutWhole) {
  std::ostringstream out;
  const Log log = Log::to_stream(out, "svc");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&log, t] {
      for (int i = 0; i < 200; ++i) log.info("thread " + std::to_string(t) + " line " + std::to_string(i));
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::istringstream in(out.str());
  std::string line;
  int count = 0;
  const std::regex whole("\\S+ INFO svc: thread [0-3] line [0-9]+");
  while (std::getline(in, line)) {
    EXPECT_TRUE(std::regex_match(line, whole)) << line;
    ++count;
  }
  EXPECT_EQ(count, 800);
}

TEST(LogLevel, NamesParseBackAndAnythingElseIsRefused) {
  for (const auto& [name, level] : log_level_names()) {
    EXPECT_EQ(parse_log_level(name), level);
    EXPECT_EQ(log_level_name(level), name);
  }
  EXPECT_EQ(parse_log_level("warn"), std::nullopt);
  EXPECT_EQ(parse_log_level("INFO"), std::nullopt);
  EXPECT_EQ(parse_log_level(""), std::nullopt);
  EXPECT_EQ(log_level_choices(), "debug, info, warning, error");
}

}  // namespace
}  // namespace cleave
