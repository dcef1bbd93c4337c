// `cleave audit`'s refusals, in-process through cli::run_main (the same
// dispatch and error printing as the binary, without a process per case).
#include <gtest/gtest.h>

#include <sstream>

#include "cli/commands.h"
#include "tests/cli/cli_runner.h"

namespace cleave {
namespace {

class AuditRefusals : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir(std::string("audit_refusals_") +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    model_ = test::write_tiny_model_with_tokenizer(dir_);
    data_ = dir_ + "/site.txt";
    test::write_file(data_, "the patient has a mild fever\n\nrest and fluids were advised\n");
  }
  // Runs `cleave audit --model M --data D extra...`; expects `status` and `message` in stderr.
  void expect_refused(std::vector<std::string> extra, int status, const std::string& message) {
    std::vector<std::string> args = {"audit", "--model", model_, "--data", data_};
    args.insert(args.end(), extra.begin(), extra.end());
    std::ostringstream err;
    ::testing::internal::CaptureStdout();
    const int got = cli::run_main(args, err);
    ::testing::internal::GetCapturedStdout();
    EXPECT_EQ(got, status) << err.str();
    EXPECT_CONTAINS(err.str(), message);
  }
  std::string dir_, model_, data_;
};

TEST_F(AuditRefusals, BadFlagsAreNamed) {
  expect_refused({"--codec", "int2"}, 2, "cleave audit: error: --codec: unknown codec 'int2'");
  expect_refused({"--activation-noise", "0.5"}, 2, "--activation-noise needs --activation-clip > 0");
  expect_refused({"--activation-clip", "-1"}, 2, "--activation-clip must be >= 0");
  expect_refused({"--activation-noise", "nan"}, 2, "--activation-noise expects a number, got 'nan'");
  expect_refused({"--cut-layer", "3"}, 2, "--cut-layer must be in [1, 2] for this model's 3 blocks, got 3");
  expect_refused({"--cut-layer", "0"}, 2, "--cut-layer must be in [1, 2]");
  expect_refused({"--max-tokens", "0"}, 2, "--max-tokens must be at least 1, got 0");
  expect_refused({"--seq-len", "1"}, 2, "--seq-len must be at least 2");
  expect_refused({"--seq-len", "x"}, 2, "--seq-len expects an integer, got 'x'");
  expect_refused({"--candidates", "-1"}, 2, "--candidates must be at least 0");
  expect_refused({"--steps", "0"}, 2, "--steps must be at least 1");
  expect_refused({"--candidate", "3"}, 2, "unknown flag --candidate");
  expect_refused({"--codec", "int2"}, 2, "usage: cleave audit");
}

TEST_F(AuditRefusals, MissingInputsAreNamed) {
  std::ostringstream err;
  EXPECT_EQ(cli::run_main({"audit", "--model", model_}, err), 2);
  EXPECT_CONTAINS(err.str(), "missing --data");
  expect_refused({"--public", dir_ + "/absent.txt"}, 1, dir_ + "/absent.txt");
  expect_refused({"--adapter", dir_ + "/absent.gguf"}, 1, dir_ + "/absent.gguf");
  test::write_file(dir_ + "/empty.jsonl", "\n");
  expect_refused({"--public", dir_ + "/empty.jsonl"}, 1, dir_ + "/empty.jsonl");
}

}  // namespace
}  // namespace cleave
