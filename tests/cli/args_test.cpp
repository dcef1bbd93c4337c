// The flag parser and the command table: values, aliases, repeats, strict
// numbers, unknown flags, and that every command has a help text.
#include "cli/args.h"

#include <gtest/gtest.h>

#include <sstream>

#include "cli/commands.h"
#include "tests/cli/cli_runner.h"

namespace cleave::cli {
namespace {

ArgParser sample_parser() {
  return ArgParser("sample", "--model FILE", "A parser for tests.")
      .value("--model", "FILE", "the model")
      .value("--n-predict", "N", "tokens", "-n")
      .value("--set", "K=V", "override")
      .value("--temperature", "T", "temperature")
      .toggle("--verbose", "say more");
}

TEST(Args, ValuesAliasesRepeatsAndToggles) {
  const ParsedArgs a = sample_parser().parse(
      {"--model", "m.gguf", "-n", "12", "--set=a=1", "--set", "b=2", "--temperature=0.5", "--verbose"});
  EXPECT_EQ(a.require("--model"), "m.gguf");
  EXPECT_EQ(a.get_int("--n-predict", 0), 12);
  EXPECT_EQ(a.all("--set"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_DOUBLE_EQ(a.get_double("--temperature", 1.0), 0.5);
  EXPECT_TRUE(a.get_switch("--verbose"));
  EXPECT_FALSE(a.help());
  EXPECT_EQ(a.get_int("--absent", 7), 7);
  EXPECT_EQ(a.get_or("--absent", "x"), "x");
  EXPECT_TRUE(sample_parser().parse({"--help"}).help());
  EXPECT_TRUE(sample_parser().parse({"-h"}).help());
}

TEST(Args, BadCommandLinesAreUsageErrors) {
  const ArgParser p = sample_parser();
  EXPECT_THROW(p.parse({"--modle", "m"}), UsageError);
  EXPECT_THROW(p.parse({"--model"}), UsageError);
  EXPECT_THROW(p.parse({"stray"}), UsageError);
  EXPECT_THROW(p.parse({"--verbose=1"}), UsageError);
  EXPECT_THROW(p.parse({"-n", "twelve"}).get_int("--n-predict", 0), UsageError);
  EXPECT_THROW(p.parse({"-n", "12x"}).get_int("--n-predict", 0), UsageError);
  EXPECT_THROW(p.parse({"--temperature", "hot"}).get_double("--temperature", 0), UsageError);
  EXPECT_THROW(p.parse({}).require("--model"), UsageError);
  try {
    p.parse({"--modle", "m"});
  } catch (const UsageError& e) {
    EXPECT_CONTAINS(e.what(), "unknown flag --modle");
  }
}

TEST(Args, UsageListsEveryFlag) {
  const std::string usage = sample_parser().usage();
  EXPECT_CONTAINS(usage, "usage: cleave sample --model FILE");
  EXPECT_CONTAINS(usage, "-n, --n-predict N");
  EXPECT_CONTAINS(usage, "--verbose");
  EXPECT_CONTAINS(usage, "--help");
}

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
