// The flag parser (CLI11 underneath): values, aliases, repeats, declared
// defaults, strict numbers, unknown flags with a suggestion, the usage text.
#include "util/args.h"

#include <gtest/gtest.h>

#include "tests/support/expect.h"

namespace cleave {
namespace {

ArgParser sample_parser() {
  return ArgParser("cleave sample", "--model FILE", "A parser for tests.")
      .value("--model", "FILE", "the model")
      .value("--n-predict", "N", "tokens", "-n")
      .defaults_to(64)
      .value("--set", "K=V", "override")
      .value("--temperature", "T", "temperature")
      .defaults_to(0.8)
      .value("--x", "C", "the x column; repeatable")
      .defaults_to("round")
      .toggle("--verbose", "say more");
}

TEST(Args, ValuesAliasesRepeatsAndToggles) {
  const ParsedArgs a = sample_parser().parse(
      {"--model", "m.gguf", "-n", "12", "--set=a=1", "--set", "b=2", "--temperature=0.5", "--verbose"});
  EXPECT_EQ(a.require("--model"), "m.gguf");
  EXPECT_EQ(a.get_int("--n-predict"), 12);
  EXPECT_EQ(a.all("--set"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_DOUBLE_EQ(a.get_double("--temperature"), 0.5);
  EXPECT_TRUE(a.get_switch("--verbose"));
  EXPECT_FALSE(a.help());
  EXPECT_TRUE(sample_parser().parse({"--help"}).help());
  EXPECT_TRUE(sample_parser().parse({"-h"}).help());
  EXPECT_EQ(sample_parser().parse({"--n-predict", "-3"}).get_int("--n-predict"), -3);
  EXPECT_EQ(sample_parser().parse({"-n", "1", "-n", "2"}).get_int("--n-predict"), 2);  // the last one given
}

TEST(Args, AnAbsentFlagHasItsDeclaredDefaultAndIsNotGiven) {
  const ParsedArgs a = sample_parser().parse({});
  EXPECT_EQ(a.get_int("--n-predict"), 64);
  EXPECT_DOUBLE_EQ(a.get_double("--temperature"), 0.8);
  EXPECT_FALSE(a.has("--n-predict"));
  EXPECT_EQ(a.get("--model"), std::nullopt);
  EXPECT_TRUE(a.all("--set").empty());
  EXPECT_EQ(a.all("--x"), std::vector<std::string>{"round"});
  EXPECT_EQ(sample_parser().parse({"--x", "a", "--x", "b"}).all("--x"), (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(a.get_switch("--verbose"));
  // Reading a flag that was never declared is the program's mistake, not the user's.
  EXPECT_THROW(a.get("--modle"), std::logic_error);
  EXPECT_THROW(ArgParser("p", "", "").toggle("--t", "t").defaults_to(1), std::logic_error);
}

std::string usage_error(const std::vector<std::string>& args) {
  try {
    const ParsedArgs a = sample_parser().parse(args);
    (void)a.get_int("--n-predict");
    (void)a.get_double("--temperature");
    (void)a.require("--model");
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Args, BadCommandLinesAreUsageErrorsThatSayWhatIsWrong) {
  EXPECT_EQ(usage_error({"--modle", "m"}), "unknown flag --modle (did you mean --model?)");
  EXPECT_EQ(usage_error({"--temprature=1"}), "unknown flag --temprature (did you mean --temperature?)");
  EXPECT_EQ(usage_error({"--frobnicate"}), "unknown flag --frobnicate");
  EXPECT_EQ(usage_error({"--model"}), "--model needs a value (FILE)");
  EXPECT_EQ(usage_error({"stray"}), "unexpected argument 'stray' (every input is given with a flag)");
  EXPECT_EQ(usage_error({"--model", "m", "stray"}), "unexpected argument 'stray' (every input is given with a flag)");
  EXPECT_EQ(usage_error({"--verbose=1"}), "--verbose takes no value");
  EXPECT_EQ(usage_error({"--model", "m", "-n", "twelve"}), "--n-predict expects an integer, got 'twelve'");
  EXPECT_EQ(usage_error({"--model", "m", "-n", "12x"}), "--n-predict expects an integer, got '12x'");
  EXPECT_EQ(usage_error({"--model", "m", "--temperature", "hot"}), "--temperature expects a number, got 'hot'");
  EXPECT_EQ(usage_error({}), "missing --model");
}

TEST(Args, UsageListsEveryFlagWithItsDefault) {
  const std::string usage = sample_parser().usage();
  EXPECT_CONTAINS(usage, "usage: cleave sample --model FILE");
  EXPECT_CONTAINS(usage, "A parser for tests.");
  EXPECT_CONTAINS(usage, "-n, --n-predict N");
  EXPECT_CONTAINS(usage, "tokens (default: 64)");
  EXPECT_CONTAINS(usage, "temperature (default: 0.8)");
  EXPECT_CONTAINS(usage, "--verbose");
  EXPECT_CONTAINS(usage, "--help");
  EXPECT_EQ(usage.find("the model (default"), std::string::npos);  // no default declared
}

TEST(Args, ParsesArgvAsMainHasIt) {
  const char* argv[] = {"bench", "--model", "m.gguf"};
  EXPECT_EQ(sample_parser().parse(3, argv).require("--model"), "m.gguf");
}

}  // namespace
}  // namespace cleave
