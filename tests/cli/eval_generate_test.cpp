// `cleave eval --generate`: greedy generation from each distinct prompt,
// scored with BLEU, NIST and ROUGE-L; --limit, --out, and errors that name
// the file and line. The metrics themselves are tested in
// tests/client/generation_metrics_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/cli/cli_runner.h"
#include "util/json.h"

namespace cleave {
namespace {

using test::run_cleave;
using test::write_file;

std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(EvalGenerate, ScoresEachDistinctPromptAndWritesTheGenerations) {
  const std::string dir = test::scratch_dir("eval_generate_scores");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  write_file(
      dir + "/data.jsonl",
      "{\"prompt\": \"the patient\", \"completion\": \"has a mild fever\"}\n"
      "{\"prompt\": \"rest and\", \"completion\": \"fluids were advised\"}\n"
      "\n"
      "{\"prompt\": \"the patient\", \"completion\": \"has a dry cough\"}\n");
  const auto result = run_cleave(
      {"eval", "--model", model, "--data", dir + "/data.jsonl", "--generate",
       "--max-tokens", "8", "--limit", "1", "--out", dir + "/out.jsonl"});
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("1 prompts (of 2), 2 references"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("generated 1/1 prompts"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("\nrouge_l: "), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("\ncider: "), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("\nbleu: "), std::string::npos) << result.output;

  const std::string out = read_file(dir + "/out.jsonl");
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  const json::Value line = json::parse(out.substr(0, out.find('\n')));
  EXPECT_EQ(line.at("prompt").as_string(), "the patient");
  EXPECT_TRUE(line.at("generation").is_string());
  ASSERT_EQ(line.at("references").size(), 2u);
  EXPECT_EQ(line.at("references")[1].as_string(), "has a dry cough");
}

TEST(EvalGenerate, ATextRecordIsAnErrorNamingTheFileAndLine) {
  const std::string dir = test::scratch_dir("eval_generate_text_record");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  write_file(
      dir + "/data.jsonl",
      "{\"prompt\": \"the patient\", \"completion\": \"has a mild fever\"}\n"
      "\n"
      "{\"text\": \"rest and fluids were advised\"}\n");
  const auto result = run_cleave(
      {"eval", "--model", model, "--data", dir + "/data.jsonl", "--generate"});
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find(
                dir + "/data.jsonl:3: expected a {\"prompt\", \"completion\"}"),
            std::string::npos)
      << result.output;
}

TEST(EvalGenerate, GenerationFlagsNeedGenerate) {
  const std::string dir = test::scratch_dir("eval_generate_flags");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  write_file(dir + "/data.jsonl",
             "{\"prompt\": \"the\", \"completion\": \"patient\"}\n");
  const auto limit = run_cleave({"eval", "--model", model, "--data",
                                 dir + "/data.jsonl", "--limit", "3"});
  EXPECT_EQ(limit.status, 2) << limit.output;
  EXPECT_NE(limit.output.find("--limit needs --generate"), std::string::npos)
      << limit.output;
  const auto zero =
      run_cleave({"eval", "--model", model, "--data", dir + "/data.jsonl",
                  "--generate", "--max-tokens", "0"});
  EXPECT_EQ(zero.status, 2) << zero.output;
}

} // namespace
} // namespace cleave
