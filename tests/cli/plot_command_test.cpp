// `cleave plot`: one metrics.csv column of several runs in one PNG.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/cli/cli_runner.h"
#include "tests/support/shared_data.h"

namespace cleave {
namespace {

using test::run_cleave;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(PlotCommand, DrawsEveryRunsColumnInOneChart) {
  const std::string dir = test::scratch_dir("cli_plot");
  std::filesystem::create_directories(dir + "/a");
  test::write_file(dir + "/a/metrics.csv", "round,sampled,eval_perplexity,dp_epsilon\n1,4,30.5,\n2,4,20.25,\n3,4,15,\n");
  test::write_file(dir + "/b.csv", "round,eval_perplexity\n1,40\n2,35\n");
  const std::string out = dir + "/chart.png";
  const auto plotted =
      run_cleave({"plot", "--run", "plain=" + dir + "/a", "--run", "noisy=" + dir + "/b.csv", "--out", out});
  ASSERT_EQ(plotted.status, 0) << plotted.output;
  EXPECT_CONTAINS(plotted.output, "plain: 3 rounds");
  EXPECT_CONTAINS(plotted.output, "noisy: 2 rounds");
  const std::string png = read_all(out);
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  // One run alone draws another picture.
  ASSERT_EQ(run_cleave({"plot", "--run", "plain=" + dir + "/a", "--out", dir + "/one.png"}).status, 0);
  EXPECT_NE(read_all(dir + "/one.png"), png);
  // An empty column plots no points rather than zeros.
  const auto empty = run_cleave({"plot", "--run", "a=" + dir + "/a", "--column", "dp_epsilon", "--out", out});
  ASSERT_EQ(empty.status, 0) << empty.output;
  EXPECT_CONTAINS(empty.output, "a: 0 rounds");
}

TEST(PlotCommand, OtherColumnsOnTheXAxisGiveAPanelEach) {
  const std::string dir = test::scratch_dir("cli_plot_x");
  test::write_file(dir + "/m.csv",
                   "round,eval_perplexity,cumulative_bytes,cumulative_train_tokens\n1,30,100,64\n2,20,,128\n3,15,300,192\n");
  const auto by_round = run_cleave({"plot", "--run", "a=" + dir + "/m.csv", "--out", dir + "/round.png"});
  ASSERT_EQ(by_round.status, 0) << by_round.output;
  const auto two = run_cleave({"plot", "--run", "a=" + dir + "/m.csv", "--x", "cumulative_train_tokens", "--x",
                               "cumulative_bytes", "--out", dir + "/two.png"});
  ASSERT_EQ(two.status, 0) << two.output;
  EXPECT_CONTAINS(two.output, "a: 3 points");
  const std::string png = read_all(dir + "/two.png");
  ASSERT_GT(png.size(), 1000u);
  EXPECT_NE(png, read_all(dir + "/round.png"));
  // CRLF line ends (Python's csv.writer): the last column is found and its values read.
  test::write_file(dir + "/crlf.csv", "round,eval_perplexity,cumulative_train_tokens\r\n1,30,64\r\n2,20,128\r\n");
  const auto crlf = run_cleave({"plot", "--run", "a=" + dir + "/crlf.csv", "--x", "cumulative_train_tokens", "--out",
                                dir + "/crlf.png"});
  ASSERT_EQ(crlf.status, 0) << crlf.output;
  EXPECT_CONTAINS(crlf.output, "a: 2 points");
  const auto unknown = run_cleave({"plot", "--run", "a=" + dir + "/m.csv", "--x", "tokens", "--out", dir + "/p.png"});
  EXPECT_EQ(unknown.status, 2) << unknown.output;
  EXPECT_CONTAINS(unknown.output, "--x tokens is not a column of " + dir + "/m.csv");
}

TEST(PlotCommand, BadInputNamesTheRunOrColumn) {
  const std::string dir = test::scratch_dir("cli_plot_bad");
  test::write_file(dir + "/m.csv", "round,eval_perplexity\n1,0\n");
  const auto column = run_cleave({"plot", "--run", "a=" + dir + "/m.csv", "--column", "loss", "--out", dir + "/p.png"});
  EXPECT_EQ(column.status, 2) << column.output;
  EXPECT_CONTAINS(column.output, "--column loss is not a column of " + dir + "/m.csv (round, eval_perplexity)");
  const auto missing = run_cleave({"plot", "--run", "a=" + dir + "/nowhere", "--out", dir + "/p.png"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_CONTAINS(missing.output, "cannot read " + dir + "/nowhere/metrics.csv");
  const auto unnamed = run_cleave({"plot", "--run", dir + "/m.csv", "--out", dir + "/p.png"});
  EXPECT_EQ(unnamed.status, 2);
  EXPECT_CONTAINS(unnamed.output, "expected NAME=DIR");
  const auto log = run_cleave({"plot", "--run", "a=" + dir + "/m.csv", "--log-y", "true", "--out", dir + "/p.png"});
  EXPECT_EQ(log.status, 1);
  EXPECT_CONTAINS(log.output, "--log-y: a has a value <= 0 in eval_perplexity");
  EXPECT_FALSE(std::filesystem::exists(dir + "/p.png"));
}

}  // namespace
}  // namespace cleave
