// `mpirun -np 3 --oversubscribe cleave simulate`: the built-in fleet spread
// over three processes (rank 0: the services, evaluation and its share of
// the sites; ranks 1 and 2: theirs, over TCP with TLS) gives the same
// adapters, byte for byte, as the same run in one process, and each rank
// holds only the site instances of its round.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/cli/cli_runner.h"
#include "tests/support/shell.h"

namespace cleave {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(SimulateMpiIntegration, ThreeRanksGiveTheAdaptersOfOneProcess) {
#ifndef CLEAVE_MPIRUN
  GTEST_SKIP() << "cleave was built without MPI or mpirun is missing (apt-get install libopenmpi-dev openmpi-bin, "
                  "then reconfigure)";
#else
  const std::string dir = test::scratch_dir("cli_simulate_mpi");
  const std::string rounds = "--set federation.rounds=2";
  const test::ShellResult one = test::run_shell(std::string(CLEAVE_CLI_BINARY) + " simulate --out " + dir +
                                                "/one " + rounds + " 2>&1");
  ASSERT_EQ(one.status, 0) << one.output;
  // Root in CI containers: Open MPI refuses root unless told.
  const test::ShellResult three = test::run_shell(
      "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 " + std::string(CLEAVE_MPIRUN) +
      " -np 3 --oversubscribe " + CLEAVE_CLI_BINARY + " simulate --out " + dir + "/three " + rounds + " 2>&1");
  ASSERT_EQ(three.status, 0) << three.output;
  EXPECT_CONTAINS(three.output, "simulate: 3 processes (MPI (Open MPI");
  const std::string adapters = read_file(dir + "/one/adapter.gguf");
  ASSERT_FALSE(adapters.empty());
  EXPECT_TRUE(adapters == read_file(dir + "/three/adapter.gguf")) << "the 3-rank run's adapters differ";
  EXPECT_CONTAINS(read_file(dir + "/three/summary.md"), "(rank 0's of 3 processes;");
  for (const std::string rank : {"1", "2"}) {
    const std::string log = read_file(dir + "/three/fleet.rank-" + rank + ".log");
    EXPECT_CONTAINS(log, "rank " + rank + " of 3: training this rank's share");
    EXPECT_CONTAINS(log, "round 1: 1 of 3 sampled sites trained on this rank");
    EXPECT_CONTAINS(log, "at most 1 alive at once, for 6 registered sites");
  }
#endif
}

}  // namespace
}  // namespace cleave
