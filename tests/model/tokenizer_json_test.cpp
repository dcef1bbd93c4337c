// Tokenizer::from_tokenizer_json: Hugging Face tokenizer.json files of
// byte-level BPE (small hand-written ones and Llama 3's), the config beside
// them, and the refusals that name the file and the field.
#include <gtest/gtest.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "tests/support/expect.h"
#include "tests/support/shared_data.h"

namespace cleave {
namespace {

// "Ġ" (U+0120) is how byte-level BPE writes a space.
const std::string kVocab = R"({"a": 0, "b": 1, "ab": 2, "\u0120": 3, "1": 4, "\u0120ab": 5})";

std::string tokenizer_json(
    const std::string& merges = R"(["a b", "\u0120 ab"])",
    const std::string& pre_tokenizer =
        R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})",
    const std::string& model_type = "BPE", const std::string& extra = "") {
  return R"({"version": "1.0",
    "added_tokens": [
      {"id": 6, "content": "<|end|>", "special": true, "lstrip": false, "rstrip": false,
       "normalized": false, "single_word": false},
      {"id": 7, "content": "<ud>", "special": false, "lstrip": false, "rstrip": false,
       "normalized": false, "single_word": false}],
    "normalizer": null,
    "pre_tokenizer": )" +
         pre_tokenizer + R"(,
    "post_processor": null,
    "decoder": {"type": "ByteLevel"},
    "model": {"type": ")" +
         model_type + R"(", "vocab": )" + kVocab + R"(, "merges": )" + merges + extra + "}}";
}

std::string write(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string load_error(const std::string& path) {
  try {
    Tokenizer::from_tokenizer_json(path);
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "no error";
}

TEST(TokenizerJson, ReadsVocabularyMergesAndAddedTokens) {
  const std::string dir = test::scratch_dir("tokenizer_json_reads");
  const Tokenizer tokenizer =
      Tokenizer::from_tokenizer_json(write(dir, "tokenizer.json", tokenizer_json()));
  EXPECT_TRUE(tokenizer.byte_level());
  EXPECT_EQ(tokenizer.size(), 8);
  EXPECT_EQ(tokenizer.vocab().kinds[6], TokenKind::CONTROL);
  EXPECT_EQ(tokenizer.vocab().kinds[7], TokenKind::USER_DEFINED);
  // One special token and no config: it is both BOS and EOS (GPT-2's <|endoftext|>).
  EXPECT_EQ(tokenizer.bos(), 6);
  EXPECT_EQ(tokenizer.eos(), 6);
  EXPECT_EQ(tokenizer.encode("ab ab", false), (std::vector<TokenId>{2, 5}));
  EXPECT_EQ(tokenizer.encode("ab<ud>ab", true), (std::vector<TokenId>{6, 2, 7, 2}));
  EXPECT_EQ(tokenizer.decode({6, 2, 7, 5}), "ab<ud> ab");
}

TEST(TokenizerJson, MergesAsStringsOrPairsGiveTheSameIds) {
  const std::string dir = test::scratch_dir("tokenizer_json_merge_forms");
  const Tokenizer strings =
      Tokenizer::from_tokenizer_json(write(dir, "strings.tokenizer.json", tokenizer_json()));
  const Tokenizer pairs = Tokenizer::from_tokenizer_json(
      write(dir, "pairs.tokenizer.json", tokenizer_json(R"([["a", "b"], ["\u0120", "ab"]])")));
  for (const std::string text : {"ab ab", "ba ab b", "aab"}) {
    EXPECT_EQ(strings.encode(text, false), pairs.encode(text, false)) << text;
  }
  EXPECT_EQ(pairs.encode("ab ab", false), (std::vector<TokenId>{2, 5}));
}

TEST(TokenizerJson, SplitStepsRunBeforeTheByteLevelMapping) {
  const std::string dir = test::scratch_dir("tokenizer_json_sequence");
  const std::string sequence = R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})";
  const Tokenizer tokenizer = Tokenizer::from_tokenizer_json(
      write(dir, "tokenizer.json", tokenizer_json(R"(["a b"])", sequence)));
  // Without GPT-2's regex, " ab" is not cut off; the digit is.
  EXPECT_EQ(tokenizer.encode("ab1ab", false), (std::vector<TokenId>{2, 4, 2}));
  EXPECT_EQ(tokenizer.encode("a b", false), (std::vector<TokenId>{0, 3, 1}));
}

TEST(TokenizerJson, BosAndEosComeFromTheConfigBesideIt) {
  const std::string dir = test::scratch_dir("tokenizer_json_config");
  const std::string path = write(dir, "tiny.tokenizer.json", tokenizer_json());
  write(
      dir, "tiny.tokenizer_config.json",
      R"({"bos_token": {"content": "<ud>", "lstrip": false}, "eos_token": "<|end|>", "add_bos_token": true,
          "chat_template": "{{ '<|im_start|>' + message['content'] }}"})");
  const Tokenizer tokenizer = Tokenizer::from_tokenizer_json(path);
  EXPECT_EQ(tokenizer.bos(), 7);
  EXPECT_EQ(tokenizer.eos(), 6);
  EXPECT_TRUE(tokenizer.vocab().add_bos);
  EXPECT_EQ(tokenizer.vocab().chat_template, "{{ '<|im_start|>' + message['content'] }}");

  write(dir, "tiny.tokenizer_config.json", R"({"bos_token": "<nowhere>", "eos_token": "<|end|>"})");
  const std::string error = load_error(path);
  EXPECT_CONTAINS(
      error, dir + "/tiny.tokenizer_config.json: bos_token '<nowhere>' is not a token of " + path);
}

TEST(TokenizerJson, WithoutConfigSeveralSpecialTokensLeaveBosUnknown) {
  const std::string dir = test::scratch_dir("tokenizer_json_no_config");
  std::string json = tokenizer_json();
  json.replace(json.find(R"("special": false)"), 16, R"("special": true)");
  const std::string path = write(dir, "tokenizer.json", json);
  const std::string error = load_error(path);
  EXPECT_CONTAINS(
      error, path + ": no bos_token: there is no " + dir + "/tokenizer_config.json to name it");
}

TEST(TokenizerJson, UnsupportedModelTypesNameTheFileAndField) {
  const std::string dir = test::scratch_dir("tokenizer_json_model_type");
  for (const std::string type : {"Unigram", "WordPiece", "WordLevel"}) {
    const std::string path =
        write(dir, type + ".json", tokenizer_json(R"([])", R"({"type": "ByteLevel"})", type));
    EXPECT_CONTAINS(load_error(path),
                    path + ": model.type is '" + type + "'; cleave reads tokenizer.json files");
  }
}

TEST(TokenizerJson, WhatCleaveCannotReproduceIsRefusedByField) {
  const std::string dir = test::scratch_dir("tokenizer_json_refusals");
  const auto error_for = [&](const std::string& name, const std::string& json) {
    return load_error(write(dir, name + ".json", json));
  };
  std::string normalized = tokenizer_json();
  normalized.replace(normalized.find(R"("normalizer": null)"), 18,
                     R"("normalizer": {"type": "NFC"})");
  EXPECT_CONTAINS(error_for("normalizer", normalized),
                  "normalizer is 'NFC'; cleave applies no normalizer");
  EXPECT_CONTAINS(error_for("whitespace", tokenizer_json(R"([])", R"({"type": "Whitespace"})")),
                  "pre_tokenizer.type is 'Whitespace', a pre-tokenizer cleave does not read");
  EXPECT_CONTAINS(
      error_for("removed", tokenizer_json(R"([])", R"({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed"}, {"type": "ByteLevel"}]})")),
      "pre_tokenizer.pretokenizers[0].behavior is 'Removed'");
  EXPECT_CONTAINS(error_for("no_byte_level", tokenizer_json(R"([])", "null")),
                  "pre_tokenizer has no ByteLevel step");
  EXPECT_CONTAINS(error_for("byte_fallback", tokenizer_json(R"([])", R"({"type": "ByteLevel"})",
                                                            "BPE", R"(, "byte_fallback": true)")),
                  "model.byte_fallback is true");
  std::string stripped = tokenizer_json();
  stripped.replace(stripped.find(R"("lstrip": false)"), 15, R"("lstrip": true)");
  EXPECT_CONTAINS(error_for("lstrip", stripped), "added_tokens[0].lstrip is true for '<|end|>'");
  EXPECT_CONTAINS(error_for("bad_merge", tokenizer_json(R"(["ab"])")),
                  "model.merges[0] = 'ab' is not two tokens separated by a space");
  EXPECT_CONTAINS(load_error(dir + "/missing.json"), dir + "/missing.json");
}

// Llama 3's tokenizer (see shared/models/vocab/README.md).
TEST(Llama3TokenizerJson, SpecialTokensAreTokensOnlyWithParseSpecial) {
  CLEAVE_REQUIRE_SHARED(path, "models/vocab/llama3.tokenizer.json");
  const Tokenizer tokenizer = Tokenizer::from_tokenizer_json(path);
  const std::string chat =
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
  const std::vector<TokenId> parsed = tokenizer.encode(chat, false, /*parse_special=*/true);
  ASSERT_GE(parsed.size(), 4u);
  EXPECT_EQ(parsed.front(), 128000);  // <|begin_of_text|>
  EXPECT_EQ(parsed[1], 128006);       // <|start_header_id|>
  EXPECT_EQ(parsed.back(), 128009);   // <|eot_id|>
  for (const TokenId id : parsed) EXPECT_NE(tokenizer.piece(id), "<|eot_id|>");
  // Decoding drops control tokens.
  EXPECT_EQ(tokenizer.decode(parsed), "user\n\nHi");

  // As text the same characters are ordinary tokens, and come back as written.
  const std::vector<TokenId> plain = tokenizer.encode(chat, false);
  for (const TokenId id : plain) EXPECT_LT(id, 128000);
  EXPECT_EQ(tokenizer.decode(plain), chat);
  EXPECT_GT(plain.size(), parsed.size());
}

TEST(Llama3TokenizerJson, TextRoundTripsIncludingNonAsciiAndEmoji) {
  CLEAVE_REQUIRE_SHARED(path, "models/vocab/llama3.tokenizer.json");
  const Tokenizer tokenizer = Tokenizer::from_tokenizer_json(path);
  EXPECT_EQ(tokenizer.encode("Hello world", true), (std::vector<TokenId>{128000, 9906, 1917}));
  const std::vector<std::string> texts = {
      "The patient reports a mild fever.\n\n  Indented line\twith tab",
      "Gr\xc3\xbc\xc3\x9f"
      "e aus K\xc3\xb6ln, \xc3\xa7"
      "a va? \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82!",
      "\xe4\xb8\xad\xe6\x96\x87\xe6\xb5\x8b\xe8\xaf\x95 \xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 "
      "\xd8\xa7\xd9\x84\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a\xd8\xa9",
      "emoji \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd family "
      "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
      "1234567890 3.14159 x^2 + y_1 == {\"json\": [1, 2]}",
  };
  for (const std::string& text : texts) {
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text, true)), text) << text;
    std::string streamed;
    for (const TokenId id : tokenizer.encode(text, false)) streamed += tokenizer.piece(id);
    EXPECT_EQ(streamed, text);
  }
}

}  // namespace
}  // namespace cleave
