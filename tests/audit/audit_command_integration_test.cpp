// `cleave audit` as a process: its help, a refusal naming the file, and runs
// whose last line is the best attack's recovery.
#include <gtest/gtest.h>

#include <regex>

#include "lora/adapter_gguf.h"
#include "model/model_loader.h"
#include "tests/cli/cli_runner.h"

namespace cleave {
namespace {

using test::run_cleave;

class AuditCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir(std::string("audit_command_") +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    model_ = test::write_tiny_model_with_tokenizer(dir_);
    data_ = dir_ + "/site.jsonl";
    test::write_file(data_,
                     "{\"text\": \"the patient has a mild fever and a dry cough\"}\n"
                     "{\"text\": \"rest and fluids were advised\"}\n");
    public_ = dir_ + "/public.txt";
    test::write_file(public_,
                     "the cough was dry\n\nfluids and rest\n\nthe patient has a fever\n\n"
                     "a mild cough and a dry fever were advised\n");
  }
  std::vector<std::string> base_args() const { return {"audit", "--model", model_, "--data", data_}; }
  test::CliResult run_with(std::vector<std::string> extra) const {
    std::vector<std::string> args = base_args();
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cleave(args);
  }
  void expect_refused(const test::CliResult& r, int status, const std::string& message) const {
    EXPECT_EQ(r.status, status) << r.output;
    EXPECT_CONTAINS(r.output, message);
  }
  std::string dir_, model_, data_, public_;
};

TEST_F(AuditCommand, Help) {
  const auto r = run_cleave({"audit", "--help"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(r.output, "usage: cleave audit --model FILE.gguf --data FILE");
  EXPECT_CONTAINS(r.output, "--activation-noise");
  EXPECT_CONTAINS(r.output, "`token recovery: X%`");
  EXPECT_CONTAINS(run_cleave({"--help"}).output, "audit");
}

// The other refusals run in-process: audit_command_test.cpp.
TEST_F(AuditCommand, MissingDataIsNamed) {
  expect_refused(run_cleave({"audit", "--model", model_, "--data", dir_ + "/absent.jsonl"}), 1,
                 "cleave audit: error: cannot read data file " + dir_ + "/absent.jsonl");
}

TEST_F(AuditCommand, LastLineIsTheBestRecovery) {
  const auto r = run_with({"--public", public_, "--cut-layer", "2", "--codec", "int8", "--activation-clip",
                           "0.5", "--activation-noise", "0.01", "--steps", "20", "--threads", "1"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(r.output, "context-free lookup: ");
  EXPECT_CONTAINS(r.output, "white-box inversion: ");
  EXPECT_CONTAINS(r.output, "white-box inversion with the base model as prior: ");
  EXPECT_CONTAINS(r.output, "learned inversion: ");
  EXPECT_TRUE(std::regex_match(r.last_line(), std::regex(R"(token recovery: [0-9]+\.[0-9]%)")))
      << r.last_line();
}

TEST_F(AuditCommand, WithTheSiteAdapters) {
  auto model = load_llama(model_, BaseQuant::none);
  const std::string adapter = dir_ + "/site-adapter.gguf";
  lora::save_gguf(lora::AdapterSet::create(*model, lora::LoraOptions{}, 1), *model, adapter);
  const auto r = run_with({"--adapter", adapter, "--threads", "1"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(r.output, "attacker knows: the base and the site's adapters");
  EXPECT_CONTAINS(r.output, "learned inversion: skipped (no public text: give --public FILE)");
  // Without noise the white-box attack is exact on the tiny model.
  EXPECT_EQ(r.last_line(), "token recovery: 100.0%") << r.output;
}

}  // namespace
}  // namespace cleave
