// The systemd units in deploy/: each runs its `cleave` command sandboxed
// (a user of its own, a read-only system, only its state directory
// writable, SIGTERM with time for the checkpoint, restarted on failure), and
// `systemd-analyze verify` accepts them, with ExecStart pointed at the
// `cleave` binary of this build (verify checks that it is executable).
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/cli/cli_runner.h"
#include "tests/support/shared_data.h"

namespace cleave {
namespace {

struct Unit {
  std::string name, command;
};
const std::vector<Unit> kUnits = {{"cleave-aggregator.service", "aggregator"},
                                  {"cleave-split-server.service", "split-server"},
                                  {"cleave-client.service", "client"}};
constexpr const char* kInstalledBinary = "/usr/local/bin/cleave";

std::string read_unit(const std::string& name) {
  std::ifstream in(std::string(CLEAVE_SOURCE_DIR) + "/deploy/" + name);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The unit's lines without comments, so a key in a comment does not count.
std::vector<std::string> settings(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    if (!line.empty() && line[0] != '#') lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

bool has(const std::vector<std::string>& lines, const std::string& setting) {
  for (const std::string& line : lines) {
    if (line == setting || line.rfind(setting, 0) == 0) return true;
  }
  return false;
}

TEST(DeployUnits, EachServiceIsSandboxedWithOnlyItsStateDirectoryWritable) {
  for (const Unit& unit : kUnits) {
    SCOPED_TRACE(unit.name);
    const std::string text = read_unit(unit.name);
    ASSERT_FALSE(text.empty()) << "deploy/" << unit.name << " is missing or empty";
    const std::vector<std::string> lines = settings(text);
    EXPECT_TRUE(has(lines, std::string("ExecStart=") + kInstalledBinary + " " + unit.command + " --config "));
    EXPECT_TRUE(has(lines, "DynamicUser=yes") || has(lines, "User=cleave"));
    for (const char* setting :
         {"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes", "StateDirectory=",
          "ReadOnlyPaths=/etc/cleave/", "KillSignal=SIGTERM", "TimeoutStopSec=", "Restart=on-failure",
          "CapabilityBoundingSet="}) {
      EXPECT_TRUE(has(lines, setting)) << "no " << setting;
    }
    EXPECT_FALSE(has(lines, "ReadWritePaths=")) << "only the state directory may be writable";
  }
}

TEST(DeployUnits, SystemdAnalyzeVerifyAcceptsThem) {
  if (test::run_shell("command -v systemd-analyze").status != 0) {
    GTEST_SKIP() << "systemd-analyze is not installed (Debian package systemd): the units in deploy/ are not "
                    "verified here";
  }
  const std::string dir = test::scratch_dir("deploy_units");
  std::string files;
  for (const Unit& unit : kUnits) {
    std::string text = read_unit(unit.name);
    const size_t at = text.find(kInstalledBinary);
    ASSERT_NE(at, std::string::npos) << unit.name;
    text.replace(at, std::string(kInstalledBinary).size(), CLEAVE_CLI_BINARY);
    test::write_file(dir + "/" + unit.name, text);
    files += " " + test::shell_quote(dir + "/" + unit.name);
  }
  const test::CliResult verify = test::run_shell("systemd-analyze verify --man=no" + files);
  EXPECT_EQ(verify.status, 0) << verify.output;
  // Unknown keys and bad values are warnings with status 0: none may name a unit.
  EXPECT_EQ(verify.output.find(".service"), std::string::npos) << verify.output;
  RecordProperty("systemd_analyze_output", verify.output);
}

}  // namespace
}  // namespace cleave
