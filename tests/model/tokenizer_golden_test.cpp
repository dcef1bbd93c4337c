// Golden ids from llama.cpp's vocabulary tests (shared/models/vocab/README.md):
// every input of ggml-vocab-NAME.gguf.inp must tokenize, without BOS and
// without parsing special tokens, to the ids on its line of the .out file,
// and decode back to itself. Llama 3's cases run through its Hugging Face
// tokenizer.json, and through a GGUF made from it with tokenizer.ggml.pre =
// llama-bpe, so both readers and llama.cpp's regex for it are checked.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "tests/support/shared_data.h"
#include "util/json.h"

namespace cleave {
namespace {

struct GoldenCase {
  std::string text;
  std::vector<TokenId> ids;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// The .inp texts are separated by "\n__ggml_vocab_test__\n", which also ends
// the file; the .out file has one line of ids per text.
std::vector<GoldenCase> read_cases(const std::string& inp_path, const std::string& out_path) {
  const std::string separator = "\n__ggml_vocab_test__\n";
  const std::string inputs = read_all(inp_path);
  std::vector<GoldenCase> cases;
  size_t from = 0;
  for (size_t at = inputs.find(separator); at != std::string::npos;
       at = inputs.find(separator, from)) {
    cases.push_back({inputs.substr(from, at - from), {}});
    from = at + separator.size();
  }
  EXPECT_EQ(from, inputs.size()) << inp_path << " does not end with the separator";

  std::istringstream outputs(read_all(out_path));
  std::string line;
  size_t index = 0;
  for (; std::getline(outputs, line); ++index) {
    if (index >= cases.size()) break;
    std::istringstream ids(line);
    for (TokenId id; ids >> id;) cases[index].ids.push_back(id);
  }
  EXPECT_EQ(index, cases.size()) << out_path << " has another number of lines than " << inp_path
                                 << " has texts";
  return cases;
}

// Checks every case; returns how many gave llama.cpp's ids.
size_t expect_golden(const Tokenizer& tokenizer, const std::vector<GoldenCase>& cases) {
  size_t matching = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<TokenId> ids = tokenizer.encode(cases[i].text, /*add_bos=*/false);
    EXPECT_EQ(ids, cases[i].ids) << "case " << i << ": '" << cases[i].text << "'";
    EXPECT_EQ(tokenizer.decode(cases[i].ids), cases[i].text) << "case " << i;
    if (ids == cases[i].ids) ++matching;
  }
  return matching;
}

void expect_gguf_vocabulary_matches(const std::string& name) {
  const std::string base = "models/vocab/ggml-vocab-" + name + ".gguf";
  CLEAVE_REQUIRE_SHARED(gguf_path, base);
  CLEAVE_REQUIRE_SHARED(inp_path, base + ".inp");
  CLEAVE_REQUIRE_SHARED(out_path, base + ".out");
  const Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(gguf_path));
  const std::vector<GoldenCase> cases = read_cases(inp_path, out_path);
  ASSERT_EQ(cases.size(), 46u);
  EXPECT_EQ(expect_golden(tokenizer, cases), cases.size()) << name;
}

TEST(LlamaCppVocabularies, Gpt2MatchesEveryCase) { expect_gguf_vocabulary_matches("gpt-2"); }

TEST(LlamaCppVocabularies, DeepSeekCoderMatchesEveryCase) {
  expect_gguf_vocabulary_matches("deepseek-coder");
}

TEST(LlamaCppVocabularies, StarCoderMatchesEveryCase) {
  expect_gguf_vocabulary_matches("starcoder");
}

// The .inp/.out are shared; the GGUF is not (see the README): skipped until it is.
TEST(LlamaCppVocabularies, CommandRMatchesEveryCase) {
  expect_gguf_vocabulary_matches("command-r");
}

// SentencePiece too, on llama.cpp's Llama 2 vocabulary.
TEST(LlamaCppVocabularies, LlamaSpmMatchesEveryCase) {
  expect_gguf_vocabulary_matches("llama-spm");
}

TEST(LlamaCppVocabularies, Llama3TokenizerJsonMatchesEveryLlamaBpeCase) {
  CLEAVE_REQUIRE_SHARED(json_path, "models/vocab/llama3.tokenizer.json");
  CLEAVE_REQUIRE_SHARED(inp_path, "models/vocab/ggml-vocab-llama-bpe.gguf.inp");
  CLEAVE_REQUIRE_SHARED(out_path, "models/vocab/ggml-vocab-llama-bpe.gguf.out");
  const Tokenizer tokenizer = Tokenizer::from_tokenizer_json(json_path);
  EXPECT_EQ(tokenizer.size(), 128256);
  EXPECT_EQ(tokenizer.vocab().tokens[tokenizer.bos()], "<|begin_of_text|>");
  EXPECT_EQ(tokenizer.vocab().tokens[tokenizer.eos()], "<|end_of_text|>");
  const std::vector<GoldenCase> cases = read_cases(inp_path, out_path);
  ASSERT_EQ(cases.size(), 46u);
  EXPECT_EQ(expect_golden(tokenizer, cases), cases.size());
}

// Llama 3's vocabulary as llama.cpp's converter writes it to GGUF.
std::string write_llama3_gguf(const std::string& json_path) {
  const json::Value root = json::parse_file(json_path);
  const Tokenizer from_json = Tokenizer::from_tokenizer_json(json_path);
  std::vector<std::string> merges;
  for (const json::Value& merge : root.at("model").at("merges").as_array()) {
    merges.push_back(merge.is_string() ? merge.as_string()
                                       : merge[0].as_string() + " " + merge[1].as_string());
  }
  std::vector<int32_t> types;
  for (const TokenKind kind : from_json.vocab().kinds) types.push_back(static_cast<int32_t>(kind));
  gguf::Writer writer;
  writer.set("general.architecture", gguf::Value::str("llama"));
  writer.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
  writer.set("tokenizer.ggml.pre", gguf::Value::str("llama-bpe"));
  writer.set("tokenizer.ggml.tokens", gguf::Value::str_array(from_json.vocab().tokens));
  writer.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
  writer.set("tokenizer.ggml.merges", gguf::Value::str_array(merges));
  writer.set("tokenizer.ggml.bos_token_id",
             gguf::Value::u32(static_cast<uint32_t>(from_json.bos())));
  writer.set("tokenizer.ggml.eos_token_id",
             gguf::Value::u32(static_cast<uint32_t>(from_json.eos())));
  const std::string path = test::scratch_dir("tokenizer_golden_llama3") + "/llama3-vocab.gguf";
  writer.write(path);
  return path;
}

TEST(LlamaCppVocabularies, Llama3GgufWithLlamaBpePreTokenizerMatchesEveryCase) {
  CLEAVE_REQUIRE_SHARED(json_path, "models/vocab/llama3.tokenizer.json");
  CLEAVE_REQUIRE_SHARED(inp_path, "models/vocab/ggml-vocab-llama-bpe.gguf.inp");
  CLEAVE_REQUIRE_SHARED(out_path, "models/vocab/ggml-vocab-llama-bpe.gguf.out");
  const Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(write_llama3_gguf(json_path)));
  EXPECT_TRUE(tokenizer.vocab().add_bos) << "llama-bpe adds BOS by default, as in llama.cpp";
  const std::vector<GoldenCase> cases = read_cases(inp_path, out_path);
  ASSERT_EQ(cases.size(), 46u);
  EXPECT_EQ(expect_golden(tokenizer, cases), cases.size());
}

}  // namespace
}  // namespace cleave
