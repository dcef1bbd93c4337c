// What the services share for their logs: --log-level (an unknown level is a
// usage error naming the flag and the levels, before the config is read),
// logging.level in each service's YAML, and the stdout log that drops lines
// below its level.
#include "cli/service_runtime.h"

#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

#include "cli/config_services.h"
#include "tests/cli/cli_runner.h"

namespace cleave::cli {
namespace {

const std::string kTls = "secure: {cert: n.crt, key: n.key, ca: ca.crt}\n";

ParsedArgs parse_service_flags(const std::vector<std::string>& args) {
  return ArgParser("service", "", "").value("--log-level", "LEVEL", log_level_help()).parse(args);
}

std::string config_error_of(const std::function<void()>& parse) {
  try {
    parse();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ServiceLogLevel, TheFlagNamesALevelAndIsOptional) {
  EXPECT_EQ(log_level_flag(parse_service_flags({"--log-level", "warning"})), LogLevel::warning);
  EXPECT_EQ(log_level_flag(parse_service_flags({"--log-level=debug"})), LogLevel::debug);
  EXPECT_EQ(log_level_flag(parse_service_flags({})), std::nullopt);
}

TEST(ServiceLogLevel, AnUnknownLevelIsAUsageErrorNamingTheFlagAndTheLevels) {
  try {
    log_level_flag(parse_service_flags({"--log-level", "verbose"}));
    FAIL() << "--log-level verbose was accepted";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "--log-level must be one of debug, info, warning, error, got 'verbose'");
  }
  EXPECT_THROW(log_level_flag(parse_service_flags({"--log-level", "WARNING"})), UsageError);
}

TEST(ServiceLogLevel, EachServiceRefusesAnUnknownLevelBeforeReadingItsConfig) {
  for (const std::string service : {"aggregator", "split-server", "client"}) {
    const test::CliResult r = test::run_cleave({service, "--config", "/nonexistent/x.yaml", "--log-level", "loud"});
    EXPECT_EQ(r.status, 2) << service << ": " << r.output;
    EXPECT_CONTAINS(r.output, "--log-level must be one of debug, info, warning, error, got 'loud'");
    const test::CliResult help = test::run_cleave({service, "--help"});
    EXPECT_CONTAINS(help.output, "--log-level LEVEL");
  }
}

TEST(ServiceLogLevel, LoggingLevelComesFromEachServiceConfig) {
  const SplitServerFile split = parse_split_server_config("model: m.gguf\nlogging: {level: warning}\n" + kTls, "s.yaml");
  EXPECT_EQ(split.logging.level, LogLevel::warning);
  EXPECT_EQ(parse_split_server_config(to_yaml(split), "resolved").logging.level, LogLevel::warning);
  EXPECT_EQ(parse_split_server_config("model: m.gguf\n" + kTls, "s.yaml").logging.level, LogLevel::info);

  const AggregatorFile aggregator = parse_aggregator_config("model: m.gguf\nlogging: {level: error}\n" + kTls, "a.yaml");
  EXPECT_EQ(aggregator.logging.level, LogLevel::error);
  EXPECT_EQ(parse_aggregator_config(to_yaml(aggregator), "resolved").logging.level, LogLevel::error);

  const ClientFile client = parse_client_config(
      "model: m.gguf\ndata: {train: t.jsonl}\nsplit: {server: 'tcp://h:2'}\nclient: {aggregator: 'tcp://h:1'}\n"
      "logging: {level: debug}\n" + kTls,
      "site.yaml", {{"logging.level", "warning"}});
  EXPECT_EQ(client.logging.level, LogLevel::warning);   // --set overrides the file

  const std::string bad = config_error_of(
      [] { parse_split_server_config("model: m.gguf\nlogging: {level: loud}\n" + kTls, "s.yaml"); });
  EXPECT_CONTAINS(bad, "logging.level");
  EXPECT_CONTAINS(bad, "warning");
}

TEST(ServiceLog, PrintsItsLevelAndAboveOnStdoutWithTheTagAndTheService) {
  std::ostringstream captured;
  std::streambuf* const original = std::cout.rdbuf(captured.rdbuf());
  const Log log = service_log("split-server", LogLevel::warning);
  log.info("listening on tcp://127.0.0.1:1");
  log.debug("a step");
  log.warning("rejected a request from peer 1: bad frame");
  log.error("the run failed: no sites");
  std::cout.rdbuf(original);
  const std::string text = captured.str();
  EXPECT_EQ(text.find("listening on"), std::string::npos) << text;
  EXPECT_EQ(text.find("a step"), std::string::npos) << text;
  EXPECT_CONTAINS(text, "Z WARNING split-server: rejected a request from peer 1: bad frame\n");
  EXPECT_CONTAINS(text, "Z ERROR split-server: the run failed: no sites\n");
}

}  // namespace
}  // namespace cleave::cli
