// `cleave convert`: a Hugging Face checkpoint written by the test becomes a
// GGUF that `cleave eval` loads, and `cleave eval --model DIR` (converted in
// memory) scores exactly what the written GGUF scores.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/bpe.h"
#include "tests/cli/cli_runner.h"
#include "tests/support/hf_layout.h"
#include "util/json.h"

namespace cleave {
namespace {

// A byte-level tokenizer.json: the 256 byte characters, a few merges, and
// <|endoftext|> as BOS and EOS.
void write_byte_level_tokenizer(const std::string& dir) {
  json::Value vocab = json::Value::object();
  for (int b = 0; b < 256; ++b) vocab.set(byte_level_encode(std::string(1, static_cast<char>(b))), b);
  vocab.set("th", 256);
  vocab.set("the", 257);
  vocab.set("\xc4\xa0the", 258);  // "Ġthe"
  json::Value root = json::parse(R"({
    "added_tokens": [{"id": 259, "content": "<|endoftext|>", "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "model": {"type": "BPE", "merges": ["t h", "th e", "\u0120 the"]}})");
  root.find("model")->set("vocab", vocab);
  std::ofstream(dir + "/tokenizer.json") << root.dump();
}

TEST(ConvertCommand, Help) {
  const test::CliResult result = test::run_cleave({"convert", "--help"});
  EXPECT_EQ(result.status, 0) << result.output;
  EXPECT_CONTAINS(result.output, "--hf DIR --out FILE.gguf [--vocab FROM.gguf]");
  EXPECT_CONTAINS(result.output, "model.safetensors.index.json");
}

TEST(ConvertCommand, ConvertedFileAndDirectoryEvaluateAlike) {
  const std::string scratch = test::scratch_dir("cli_convert");
  const std::string dir = scratch + "/hf";
  std::filesystem::create_directories(dir);
  LlamaConfig c = test::tiny_config();
  c.vocab_size = 260;
  test::write_hf_layout(dir, c, random_llama_weights(c, 5));
  write_byte_level_tokenizer(dir);
  test::write_file(
      scratch + "/data.jsonl",
      "{\"text\": \"the patient has a mild fever\"}\n{\"text\": \"then the fever went down\"}\n");

  const std::string out = scratch + "/model.gguf";
  const test::CliResult convert = test::run_cleave({"convert", "--hf", dir, "--out", out});
  ASSERT_EQ(convert.status, 0) << convert.output;
  EXPECT_CONTAINS(convert.output, "wrote " + out + " (llama: dim 32, 3 blocks");
  EXPECT_CONTAINS(convert.output, "gpt2 tokenizer");

  const test::CliResult from_file =
      test::run_cleave({"eval", "--model", out, "--data", scratch + "/data.jsonl"});
  ASSERT_EQ(from_file.status, 0) << from_file.output;
  const test::CliResult from_dir =
      test::run_cleave({"eval", "--model", dir, "--data", scratch + "/data.jsonl"});
  ASSERT_EQ(from_dir.status, 0) << from_dir.output;
  EXPECT_CONTAINS(from_file.last_line(), "perplexity: ");
  EXPECT_EQ(from_dir.last_line(), from_file.last_line());
  EXPECT_CONTAINS(from_dir.output, "model: " + dir + " (llama: dim 32");

  // cleave tokenize takes the directory as every other model path does.
  test::write_file(scratch + "/text.txt", "the patient has a mild fever");
  const test::CliResult ids_file = test::run_cleave({"tokenize", "--model", out, "--file", scratch + "/text.txt"});
  const test::CliResult ids_dir = test::run_cleave({"tokenize", "--model", dir, "--file", scratch + "/text.txt"});
  ASSERT_EQ(ids_dir.status, 0) << ids_dir.output;
  EXPECT_FALSE(ids_file.last_line().empty());
  EXPECT_EQ(ids_dir.last_line(), ids_file.last_line());
}

TEST(ConvertCommand, BadCheckpointIsAnError) {
  const std::string scratch = test::scratch_dir("cli_convert_bad");
  const test::CliResult result = test::run_cleave({"convert", "--hf", scratch, "--out", scratch + "/x.gguf"});
  EXPECT_EQ(result.status, 1);
  EXPECT_CONTAINS(result.output, "cleave convert: error: " + scratch + ": no config.json");
  EXPECT_FALSE(std::filesystem::exists(scratch + "/x.gguf"));
}

}  // namespace
}  // namespace cleave
