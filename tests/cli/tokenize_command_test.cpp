// `cleave tokenize`: the ids of a text on one line, --decode's pieces, and
// errors that name the file, for GGUF (SentencePiece and byte-level BPE) and
// tokenizer.json tokenizers.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "tests/cli/cli_runner.h"
#include "tests/support/shared_data.h"

namespace cleave {
namespace {

using test::run_cleave;
using test::write_file;

std::string joined(const std::vector<TokenId>& ids) {
  std::string line;
  for (const TokenId id : ids) line += (line.empty() ? "" : " ") + std::to_string(id);
  return line + "\n";
}

TEST(TokenizeCommand, PrintsTheIdsOfAFileOnOneLine) {
  const std::string dir = test::scratch_dir("tokenize_command_file");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  const std::string text = "the patient has a dry cough\nrest advised";
  write_file(dir + "/text.txt", text);
  const Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(model));

  const auto plain = run_cleave({"tokenize", "--model", model, "--file", dir + "/text.txt"});
  ASSERT_EQ(plain.status, 0) << plain.output;
  EXPECT_EQ(plain.output, joined(tokenizer.encode(text, false)));

  const auto with_bos =
      run_cleave({"tokenize", "--model", model, "--file", dir + "/text.txt", "--bos"});
  ASSERT_EQ(with_bos.status, 0) << with_bos.output;
  EXPECT_EQ(with_bos.output, joined(tokenizer.encode(text, true)));
}

TEST(TokenizeCommand, ReadsStandardInputWithoutFile) {
  const std::string dir = test::scratch_dir("tokenize_command_stdin");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  write_file(dir + "/input.txt", "a mild fever\n");
  const Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(model));
  const auto result = run_cleave({"tokenize", "--model", model}, dir + "/input.txt");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(result.output, joined(tokenizer.encode("a mild fever\n", false)));
}

TEST(TokenizeCommand, ByteLevelGgufGivesLlamaCppsIds) {
  CLEAVE_REQUIRE_SHARED(model, "models/vocab/ggml-vocab-gpt-2.gguf");
  const std::string dir = test::scratch_dir("tokenize_command_gpt2");
  // " Hello World!" is one of llama.cpp's cases for this vocabulary.
  write_file(dir + "/text.txt", " Hello World!");
  const auto result = run_cleave({"tokenize", "--model", model, "--file", dir + "/text.txt"});
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(result.output, "18435 2159 0\n");
}

TEST(TokenizeCommand, DecodeShowsEachTokenQuotedAndControlTokensByName) {
  CLEAVE_REQUIRE_SHARED(json, "models/vocab/llama3.tokenizer.json");
  const std::string dir = test::scratch_dir("tokenize_command_decode");
  write_file(dir + "/text.txt", "Hello \"world\"\n<|eot_id|>");
  const auto result = run_cleave({"tokenize", "--tokenizer", json, "--file", dir + "/text.txt",
                                  "--bos", "--special", "--decode"});
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(result.output,
            "128000\t<|begin_of_text|>\n"
            "9906\t\"Hello\"\n"
            "330\t\" \\\"\"\n"
            "14957\t\"world\"\n"
            "702\t\"\\\"\\n\"\n"
            "128009\t<|eot_id|>\n");
}

TEST(TokenizeCommand, DecodeEscapesBytesOfSplitCharacters) {
  CLEAVE_REQUIRE_SHARED(model, "models/vocab/ggml-vocab-gpt-2.gguf");
  const std::string dir = test::scratch_dir("tokenize_command_split_character");
  // GPT-2 spells 猫 (U+732B) byte by byte: no token is a whole character.
  write_file(dir + "/text.txt", "\xe7\x8c\xab");
  const auto result =
      run_cleave({"tokenize", "--model", model, "--file", dir + "/text.txt", "--decode"});
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("\t\"\\xe7"), std::string::npos) << result.output;
}

TEST(TokenizeCommand, ErrorsNameTheFile) {
  const std::string dir = test::scratch_dir("tokenize_command_errors");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);

  const auto no_text = run_cleave({"tokenize", "--model", model, "--file", dir + "/missing.txt"});
  EXPECT_EQ(no_text.status, 1) << no_text.output;
  EXPECT_CONTAINS(no_text.output, dir + "/missing.txt");

  const auto no_model =
      run_cleave({"tokenize", "--model", dir + "/missing.gguf", "--file", dir + "/missing.txt"});
  EXPECT_EQ(no_model.status, 1) << no_model.output;
  EXPECT_CONTAINS(no_model.output, dir + "/missing.gguf");

  write_file(dir + "/unigram.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  const auto unigram = run_cleave(
      {"tokenize", "--tokenizer", dir + "/unigram.json", "--file", dir + "/missing.txt"});
  EXPECT_EQ(unigram.status, 1) << unigram.output;
  EXPECT_CONTAINS(unigram.output, dir + "/unigram.json: model.type is 'Unigram'");

  const auto both =
      run_cleave({"tokenize", "--model", model, "--tokenizer", dir + "/unigram.json"});
  EXPECT_EQ(both.status, 2) << both.output;
  EXPECT_CONTAINS(both.output, "either --model or --tokenizer");
  const auto neither = run_cleave({"tokenize"});
  EXPECT_EQ(neither.status, 2) << neither.output;
}

TEST(TokenizeCommand, HelpListsTheFlags) {
  const auto help = run_cleave({"tokenize", "--help"});
  EXPECT_EQ(help.status, 0);
  for (const char* flag : {"--model", "--tokenizer", "--file", "--bos", "--special", "--decode"}) {
    EXPECT_CONTAINS(help.output, flag);
  }
  EXPECT_CONTAINS(run_cleave({"--help"}).output, "tokenize");
}

}  // namespace
}  // namespace cleave
