// The command table: every command has a help text, and run_main's exit
// statuses and messages for bad command lines.
#include "cli/commands.h"

#include <gtest/gtest.h>

#include <sstream>

#include "model/generate.h"
#include "secure/ca.h"
#include "tests/cli/cli_runner.h"

namespace cleave::cli {
namespace {

TEST(Commands, EveryCommandHasHelp) {
  for (const char* name : {"train", "eval", "generate", "demo"}) {
    EXPECT_NE(find_command(name), nullptr) << name;
  }
  for (const Command& c : commands()) {
    const std::string usage = c.parser().usage();
    EXPECT_CONTAINS(usage, "usage: cleave " + c.name);
    EXPECT_CONTAINS(main_usage(), c.name);
  }
  EXPECT_EQ(find_command("nope"), nullptr);
}

TEST(Commands, HelpShowsTheDefaultsTheCodeRunsWith) {
  // The sampling defaults live in model/generate.h alone; --help reads them there.
  const SamplingOptions sampling;
  const std::string usage = find_command("generate")->parser().usage();
  EXPECT_CONTAINS(usage, "stops early at EOS (default: " + std::to_string(sampling.max_new_tokens) + ")");
  EXPECT_CONTAINS(usage, "0: all (default: " + std::to_string(sampling.top_k) + ")");
  EXPECT_CONTAINS(find_command("ca issue")->parser().usage(),
                  "validity in days (default: " + std::to_string(secure::kDefaultNodeDays) + ")");
  const ParsedArgs absent = find_command("generate")->parser().parse({});
  EXPECT_EQ(absent.get_int("--n-predict"), sampling.max_new_tokens);
  EXPECT_DOUBLE_EQ(absent.get_double("--top-p"), sampling.top_p);
}

TEST(Commands, AMistypedFlagIsRefusedWithTheClosestOne) {
  std::ostringstream err;
  EXPECT_EQ(run_main({"generate", "--n-predcit", "3"}, err), 2);
  EXPECT_CONTAINS(err.str(), "cleave generate: error: unknown flag --n-predcit (did you mean --n-predict?)");
  err.str("");
  EXPECT_EQ(run_main({"ca", "init", "--dyas=3"}, err), 2);
  EXPECT_CONTAINS(err.str(), "cleave ca init: error: unknown flag --dyas (did you mean --days?)");
}

TEST(Commands, RunMainExitStatuses) {
  std::ostringstream err;
  EXPECT_EQ(run_main({}, err), 2);
  EXPECT_EQ(run_main({"frobnicate"}, err), 2);
  EXPECT_CONTAINS(err.str(), "unknown command 'frobnicate'");
  err.str("");
  EXPECT_EQ(run_main({"eval", "--bogus"}, err), 2);
  EXPECT_CONTAINS(err.str(), "cleave eval: error: unknown flag --bogus");
  EXPECT_CONTAINS(err.str(), "usage: cleave eval");
  err.str("");
  EXPECT_EQ(run_main({"eval", "--data", "x.jsonl"}, err), 2);
  EXPECT_CONTAINS(err.str(), "missing --model");
  err.str("");
  EXPECT_EQ(run_main({"train", "--config", "/no/such/config.yaml"}, err), 2);
  EXPECT_CONTAINS(err.str(), "cleave train: error: /no/such/config.yaml: cannot read");
  err.str("");
  EXPECT_EQ(run_main({"eval", "--model", "/no/such.gguf", "--data", "x.jsonl"}, err), 1);
  EXPECT_CONTAINS(err.str(), "cleave eval: error: /no/such.gguf: no such model file");
}

}  // namespace
}  // namespace cleave::cli
