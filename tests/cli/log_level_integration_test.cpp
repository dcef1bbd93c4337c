// A service started with --log-level warning prints its warnings and none of
// its info lines; the config's logging.level does the same when the flag is
// absent, and the flag overrides it.
#include <gtest/gtest.h>

#include "tests/cli/service_fixture.h"

namespace cleave {
namespace {

using test::ChildProcess;

// Starts a plaintext split server with `extra` arguments, waits for its
// plaintext warning (the one line it prints at warning), stops it with SIGINT
// and returns everything it printed.
std::string run_plaintext_split_server(const std::string& dir, const std::string& yaml_extra,
                                       const std::vector<std::string>& extra) {
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  test::write_file(dir + "/plain.yaml", "model: " + model +
                                            "\nruntime: {threads: 1}\nsplit_server: {bind: tcp://127.0.0.1:0}\n"
                                            "secure: {insecure: true}\n" + yaml_extra);
  std::vector<std::string> args = {"split-server", "--config", dir + "/plain.yaml"};
  args.insert(args.end(), extra.begin(), extra.end());
  ChildProcess server("split-server", args);
  EXPECT_TRUE(server.wait_for("WARNING split-server: insecure: true: traffic on tcp://", test::kStartTimeout))
      << server.output();
  server.signal(SIGINT);
  const auto status = server.wait_exit(test::kStartTimeout);
  EXPECT_TRUE(status) << server.output();
  if (status) {
    EXPECT_EQ(*status, 0) << server.output();
  }
  return server.output();
}

TEST(LogLevelIntegration, AtWarningTheSplitServerPrintsNoInfoLines) {
  const std::string out =
      run_plaintext_split_server(test::scratch_dir("cli_log_level_warning"), "", {"--log-level", "warning"});
  EXPECT_CONTAINS(out, "is NOT encrypted or authenticated");
  // At info these are printed (SplitIntegration waits for both).
  EXPECT_EQ(out.find("listening on"), std::string::npos) << out;
  EXPECT_EQ(out.find("stopping at round"), std::string::npos) << out;
  EXPECT_EQ(out.find(" INFO "), std::string::npos) << out;
}

TEST(LogLevelIntegration, TheFlagOverridesLoggingLevelOfTheConfig) {
  // logging.level: error would hide the plaintext warning; --log-level info shows it and the info lines.
  const std::string out = run_plaintext_split_server(test::scratch_dir("cli_log_level_override"),
                                                     "logging: {level: error}\n", {"--log-level", "info"});
  EXPECT_CONTAINS(out, " INFO split-server: listening on tcp://127.0.0.1:");
  EXPECT_CONTAINS(out, " INFO split-server: stopping at round 0 (signal)");
}

}  // namespace
}  // namespace cleave
