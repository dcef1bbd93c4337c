// The SentencePiece-style tokenizer: merge order and byte fallback on a tiny
// hand-made vocabulary, GGUF loading, and llama.cpp's golden ids for stories260K.
#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "tests/model/tokenizer_gguf_files.h"
#include "tests/support/expect.h"
#include "tests/support/shared_data.h"

namespace cleave {
namespace {

// gtest alone (no gmock): substring checks that print the whole message on failure.
const std::string kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's space

// <unk> <s> </s>, three byte tokens, then normal pieces with their scores.
Vocabulary tiny_vocab(bool add_space_prefix, float score_ab = -3.0f, float score_bc = -4.0f) {
  Vocabulary vocab;
  auto add = [&vocab](const std::string& piece, float score, TokenKind kind) {
    vocab.tokens.push_back(piece);
    vocab.scores.push_back(score);
    vocab.kinds.push_back(kind);
  };
  add("<unk>", 0.0f, TokenKind::UNKNOWN);
  add("<s>", 0.0f, TokenKind::CONTROL);
  add("</s>", 0.0f, TokenKind::CONTROL);
  add("<0x0A>", 0.0f, TokenKind::BYTE);
  add("<0xC3>", 0.0f, TokenKind::BYTE);
  add("<0xA9>", 0.0f, TokenKind::BYTE);
  add(kSpace, -1.0f, TokenKind::NORMAL);
  add("a", -2.0f, TokenKind::NORMAL);
  add("b", -2.0f, TokenKind::NORMAL);
  add("c", -2.0f, TokenKind::NORMAL);
  add("ab", score_ab, TokenKind::NORMAL);
  add("bc", score_bc, TokenKind::NORMAL);
  add(kSpace + "a", -5.0f, TokenKind::NORMAL);
  vocab.add_space_prefix = add_space_prefix;
  return vocab;
}

TokenId id_of(const Tokenizer& tokenizer, const std::string& piece) {
  const auto& tokens = tokenizer.vocab().tokens;
  const auto found = std::find(tokens.begin(), tokens.end(), piece);
  if (found == tokens.end()) throw std::runtime_error("test vocabulary lacks " + piece);
  return static_cast<TokenId>(found - tokens.begin());
}

std::vector<TokenId> ids_of(const Tokenizer& tokenizer, const std::vector<std::string>& pieces) {
  std::vector<TokenId> ids;
  for (const auto& piece : pieces) ids.push_back(id_of(tokenizer, piece));
  return ids;
}

TEST(TokenizerMerge, HigherScoringPairMergesFirst) {
  const Tokenizer ab_first(tiny_vocab(false, -3.0f, -4.0f));
  EXPECT_EQ(ab_first.encode("abc", false), ids_of(ab_first, {"ab", "c"}));

  const Tokenizer bc_first(tiny_vocab(false, -4.0f, -3.0f));
  EXPECT_EQ(bc_first.encode("abc", false), ids_of(bc_first, {"a", "bc"}));
}

TEST(TokenizerMerge, EqualScoresMergeLeftmostPairFirst) {
  const Tokenizer tokenizer(tiny_vocab(false, -3.0f, -3.0f));
  EXPECT_EQ(tokenizer.encode("abc", false), ids_of(tokenizer, {"ab", "c"}));
  EXPECT_EQ(tokenizer.encode("bcab", false), ids_of(tokenizer, {"bc", "ab"}));
}

TEST(TokenizerMerge, MergedSymbolsMergeAgain) {
  Vocabulary vocab = tiny_vocab(false);
  vocab.tokens.push_back("abc");
  vocab.scores.push_back(-6.0f);  // worse than both pairs: only reachable through them
  vocab.kinds.push_back(TokenKind::NORMAL);
  vocab.tokens.push_back("cab");  // better, but "c" and "ab" are never adjacent in "abcab"
  vocab.scores.push_back(-0.5f);  // until "abc" has already taken the "c"
  vocab.kinds.push_back(TokenKind::NORMAL);
  const Tokenizer tokenizer(vocab);
  EXPECT_EQ(tokenizer.encode("abc", false), ids_of(tokenizer, {"abc"}));
  // "ab" (-3) merges at both ends first; then "abc" (-6) and "cab" (-0.5) compete only
  // once "c" is next to an "ab", where "cab" wins as the best-scoring pair.
  EXPECT_EQ(tokenizer.encode("abcab", false), ids_of(tokenizer, {"ab", "cab"}));
}

TEST(TokenizerEncode, SpacePrefixAndEscapedSpaces) {
  const Tokenizer tokenizer(tiny_vocab(true));
  // " a b" becomes "▁a▁b": "▁a" is a piece, "▁b" is not.
  EXPECT_EQ(tokenizer.encode("a b", false), ids_of(tokenizer, {kSpace + "a", kSpace, "b"}));
  const Tokenizer no_prefix(tiny_vocab(false));
  EXPECT_EQ(no_prefix.encode("a b", false), ids_of(no_prefix, {"a", kSpace, "b"}));
}

TEST(TokenizerEncode, BosIsPrependedOnRequest) {
  const Tokenizer tokenizer(tiny_vocab(true));
  EXPECT_EQ(tokenizer.encode("a", true), (std::vector<TokenId>{1, id_of(tokenizer, kSpace + "a")}));
  EXPECT_EQ(tokenizer.encode("a", false), (std::vector<TokenId>{id_of(tokenizer, kSpace + "a")}));
}

TEST(TokenizerEncode, EmptyTextIsJustBosOrNothing) {
  const Tokenizer tokenizer(tiny_vocab(true));
  EXPECT_EQ(tokenizer.encode("", true), (std::vector<TokenId>{tokenizer.bos()}));
  EXPECT_TRUE(tokenizer.encode("", false).empty());
}

TEST(TokenizerEncode, ParseSpecialCutsOutControlTokensWrittenInTheText) {
  const Tokenizer tokenizer(tiny_vocab(true));
  // Each text after a special token gets its own space prefix, as in llama.cpp.
  EXPECT_EQ(tokenizer.encode("a</s>a", false, /*parse_special=*/true),
            (std::vector<TokenId>{id_of(tokenizer, kSpace + "a"), 2, id_of(tokenizer, kSpace + "a")}));
  EXPECT_EQ(tokenizer.encode("<s>", true, true), (std::vector<TokenId>{1, 1}));
  // Without it, "</s>" is text: characters the vocabulary lacks.
  const std::vector<TokenId> as_text = tokenizer.encode("a</s>a", false);
  EXPECT_EQ(std::count(as_text.begin(), as_text.end(), 2), 0);
}

TEST(TokenizerEncode, PartsParseSpecialTokensOnlyWhereTheyAsk) {
  const Tokenizer tokenizer(tiny_vocab(true));
  const TokenId space_a = id_of(tokenizer, kSpace + "a");
  // One part is the text alone.
  EXPECT_EQ(tokenizer.encode({{"a</s>a", true}}, false), tokenizer.encode("a</s>a", false, true));
  EXPECT_EQ(tokenizer.encode({{"a</s>a", false}}, true), tokenizer.encode("a</s>a", true, false));
  // "</s>" in a part without parse_special stays text, in one with it is EOS.
  const std::vector<TokenId> marked = tokenizer.encode({{"a", false}, {"</s>", true}}, false);
  EXPECT_EQ(marked, (std::vector<TokenId>{space_a, 2}));
  const std::vector<TokenId> typed = tokenizer.encode({{"a", true}, {"</s>", false}}, false);
  EXPECT_EQ(std::count(typed.begin(), typed.end(), 2), 0);
  // Text across a boundary is one text: one space prefix, pieces merge across it.
  EXPECT_EQ(tokenizer.encode({{"a", true}, {"b", false}, {"c", true}}, false),
            tokenizer.encode("abc", false));
  // After a special token the next text, whichever part it is in, gets the prefix.
  EXPECT_EQ(tokenizer.encode({{"<s>", true}, {"", false}, {"a", false}}, false),
            (std::vector<TokenId>{1, space_a}));
}

TEST(TokenizerEncode, MissingCharactersFallBackToByteTokens) {
  const Tokenizer tokenizer(tiny_vocab(false));
  // "é" is C3 A9 and no piece: one token per byte. "\n" has only its byte token.
  EXPECT_EQ(tokenizer.encode("a\xc3\xa9\n", false),
            ids_of(tokenizer, {"a", "<0xC3>", "<0xA9>", "<0x0A>"}));
}

TEST(TokenizerEncode, BytesWithoutByteTokenBecomeUnknown) {
  const Tokenizer tokenizer(tiny_vocab(false));
  EXPECT_EQ(tokenizer.encode("zab", false),
            (std::vector<TokenId>{0, id_of(tokenizer, "ab")}));
  // A three-byte character with no byte tokens at all: three <unk>.
  EXPECT_EQ(tokenizer.encode("\xe4\xb8\xad", false), (std::vector<TokenId>{0, 0, 0}));
}

TEST(TokenizerEncode, TruncatedUtf8StillSplitsIntoBytes) {
  const Tokenizer tokenizer(tiny_vocab(false));
  // A lone lead byte at the end, and a stray continuation byte.
  EXPECT_EQ(tokenizer.encode("a\xc3", false), ids_of(tokenizer, {"a", "<0xC3>"}));
  EXPECT_EQ(tokenizer.encode("\xa9" "b", false), ids_of(tokenizer, {"<0xA9>", "b"}));
}

TEST(TokenizerDecode, ControlAndUnknownTokensProduceNothing) {
  const Tokenizer tokenizer(tiny_vocab(true));
  const std::vector<TokenId> ids = {1, id_of(tokenizer, kSpace + "a"), 0, 2};
  EXPECT_EQ(tokenizer.decode(ids), "a");
}

TEST(TokenizerDecode, OnlyTheFirstPieceLosesItsLeadingSpace) {
  const Tokenizer tokenizer(tiny_vocab(true));
  const TokenId space_a = id_of(tokenizer, kSpace + "a");
  EXPECT_EQ(tokenizer.decode({space_a, space_a}), "a a");
  EXPECT_EQ(tokenizer.decode({1, space_a, space_a, 2}), "a a");
  // A first piece that is a byte is text as it stands.
  EXPECT_EQ(tokenizer.decode({id_of(tokenizer, "<0x0A>"), space_a}), "\n a");
  // Without a space prefix, the encoder added nothing, so nothing is removed.
  const Tokenizer no_prefix(tiny_vocab(false));
  EXPECT_EQ(no_prefix.decode({space_a, space_a}), " a a");
}

TEST(TokenizerDecode, ByteTokensAssembleMultiByteCharacters) {
  const Tokenizer tokenizer(tiny_vocab(false));
  EXPECT_EQ(tokenizer.decode(ids_of(tokenizer, {"c", "<0xC3>", "<0xA9>", "<0x0A>"})),
            "c\xc3\xa9\n");
}

TEST(TokenizerDecode, PieceShowsOneTokenForStreaming) {
  const Tokenizer tokenizer(tiny_vocab(true));
  EXPECT_EQ(tokenizer.piece(id_of(tokenizer, kSpace + "a")), " a");
  EXPECT_EQ(tokenizer.piece(id_of(tokenizer, "<0xC3>")), "\xc3");
  EXPECT_EQ(tokenizer.piece(1), "");
  try {
    tokenizer.piece(13);
    FAIL() << "an id past the vocabulary was accepted";
  } catch (const std::runtime_error& error) {
    EXPECT_CONTAINS(error.what(), "token id 13 is outside the vocabulary of 13 tokens");
  }
  EXPECT_THROW(tokenizer.decode({-1}), std::runtime_error);
}

// UTF-8 encoding of one code point (no surrogates are passed in).
std::string utf8(uint32_t code_point) {
  std::string out;
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
  return out;
}

// Every byte has a token, so any valid UTF-8 text survives the round trip.
// (Invalid UTF-8 need not: a lead byte swallows the next bytes as one
// character, which can split an escaped space, in llama.cpp as here.)
TEST(TokenizerRoundTrip, RandomUtf8WithFullByteFallback) {
  Vocabulary vocab = tiny_vocab(true);
  for (int byte = 0; byte < 256; ++byte) {
    char piece[7];
    std::snprintf(piece, sizeof piece, "<0x%02X>", byte);
    if (std::find(vocab.tokens.begin(), vocab.tokens.end(), piece) != vocab.tokens.end()) continue;
    vocab.tokens.push_back(piece);
    vocab.scores.push_back(0.0f);
    vocab.kinds.push_back(TokenKind::BYTE);
  }
  const Tokenizer tokenizer(vocab);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> length(1, 40);
  // Mostly the vocabulary's own letters and spaces, sometimes any character
  // of one, two, three or four bytes.
  const std::string common = "abc  ";
  std::uniform_int_distribution<int> pick(0, static_cast<int>(common.size()) + 3);
  const uint32_t range_end[] = {0x80, 0x800, 0x10000, 0x110000};
  std::uniform_int_distribution<int> width(0, 3);
  for (int trial = 0; trial < 500; ++trial) {
    std::string text;
    const int n = length(rng);
    for (int i = 0; i < n; ++i) {
      const int choice = pick(rng);
      if (choice < static_cast<int>(common.size())) {
        text += common[choice];
        continue;
      }
      uint32_t code_point = std::uniform_int_distribution<uint32_t>(1, range_end[width(rng)] - 1)(rng);
      // Surrogates are not characters; U+2581 would read back as a space, as in SentencePiece.
      if ((code_point >= 0xD800 && code_point < 0xE000) || code_point == 0x2581) code_point = 'c';
      text += utf8(code_point);
    }
    const std::vector<TokenId> ids = tokenizer.encode(text, true);
    EXPECT_EQ(tokenizer.decode(ids), text) << "trial " << trial;
    for (const TokenId id : ids) EXPECT_NE(id, tokenizer.vocab().unk) << "trial " << trial;
  }
}

// The bigram queue keeps long inputs fast; a quadratic merge would take minutes here.
TEST(TokenizerEncode, LongTextEncodesAndRoundTrips) {
  const Tokenizer tokenizer(tiny_vocab(true));
  std::string text;
  for (int i = 0; i < 50000; ++i) text += "abc a ";
  text.pop_back();
  const std::vector<TokenId> ids = tokenizer.encode(text, false);
  // Each "▁abc▁a" (the first "▁" is the prefix or the previous space) is ▁ ab c ▁a.
  EXPECT_EQ(ids.size(), 200000u);
  EXPECT_EQ(tokenizer.decode(ids), text);
}

TEST(TokenizerVocabulary, InconsistentVocabulariesAreRejected) {
  Vocabulary short_scores = tiny_vocab(true);
  short_scores.scores.pop_back();
  EXPECT_THROW(Tokenizer{short_scores}, std::runtime_error);

  Vocabulary bad_bos = tiny_vocab(true);
  bad_bos.bos = 99;
  try {
    Tokenizer{bad_bos};
    FAIL() << "BOS outside the vocabulary was accepted";
  } catch (const std::runtime_error& error) {
    EXPECT_CONTAINS(error.what(), "BOS token id 99");
  }

  Vocabulary bad_byte = tiny_vocab(true);
  bad_byte.kinds[7] = TokenKind::BYTE;  // "a"
  EXPECT_THROW(Tokenizer{bad_byte}, std::runtime_error);

  EXPECT_THROW(Tokenizer{Vocabulary{}}, std::runtime_error);
}

// Writes the tokenizer keys of `vocab` (and `model`) to a GGUF file.
gguf::Writer tokenizer_writer(const Vocabulary& vocab, const std::string& model = "llama") {
  gguf::Writer writer;
  writer.set("general.architecture", gguf::Value::str("llama"));
  writer.set("tokenizer.ggml.model", gguf::Value::str(model));
  writer.set("tokenizer.ggml.tokens", gguf::Value::str_array(vocab.tokens));
  writer.set("tokenizer.ggml.scores", gguf::Value::f32_array(vocab.scores));
  std::vector<int32_t> types;
  for (const TokenKind kind : vocab.kinds) types.push_back(static_cast<int32_t>(kind));
  writer.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
  writer.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(static_cast<uint32_t>(vocab.bos)));
  writer.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(static_cast<uint32_t>(vocab.eos)));
  writer.set("tokenizer.ggml.unknown_token_id",
             gguf::Value::u32(static_cast<uint32_t>(vocab.unk)));
  return writer;
}

std::string write_file(const gguf::Writer& writer, const std::string& name) {
  return test::write_scratch_gguf(writer, "tokenizer_" + name, name);
}

using test::from_gguf_error;

TEST(TokenizerFromGguf, ReadsTheVocabularyAndFlags) {
  Vocabulary vocab = tiny_vocab(true);
  vocab.eos = 1;  // distinguishable from the defaults
  vocab.bos = 2;
  gguf::Writer writer = tokenizer_writer(vocab);
  writer.set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(false));
  writer.set("tokenizer.ggml.add_space_prefix", gguf::Value::boolean(false));
  const std::string path = write_file(writer, "full");

  const Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(path));
  EXPECT_EQ(tokenizer.vocab().tokens, vocab.tokens);
  EXPECT_EQ(tokenizer.vocab().scores, vocab.scores);
  EXPECT_EQ(tokenizer.vocab().kinds, vocab.kinds);
  EXPECT_EQ(tokenizer.bos(), 2);
  EXPECT_EQ(tokenizer.eos(), 1);
  EXPECT_FALSE(tokenizer.vocab().add_bos);
  EXPECT_FALSE(tokenizer.vocab().add_space_prefix);
  EXPECT_EQ(tokenizer.encode("abc", false), ids_of(tokenizer, {"ab", "c"}));
}

TEST(TokenizerFromGguf, ReadsTheChatTemplate) {
  const std::string chat_template = "{% for message in messages %}[INST] {{ message['content'] }}";
  gguf::Writer writer = tokenizer_writer(tiny_vocab(true));
  writer.set("tokenizer.chat_template", gguf::Value::str(chat_template));
  EXPECT_EQ(Tokenizer::from_gguf(*gguf::File::open(write_file(writer, "chat"))).vocab().chat_template,
            chat_template);
  const std::string without = write_file(tokenizer_writer(tiny_vocab(true)), "no_chat");
  EXPECT_EQ(Tokenizer::from_gguf(*gguf::File::open(without)).vocab().chat_template, "");
}

TEST(TokenizerFromGguf, OptionalKeysTakeLlamaDefaults) {
  const Vocabulary vocab = tiny_vocab(true);
  gguf::Writer writer;
  writer.set("tokenizer.ggml.model", gguf::Value::str("llama"));
  writer.set("tokenizer.ggml.tokens", gguf::Value::str_array(vocab.tokens));
  writer.set("tokenizer.ggml.scores", gguf::Value::f32_array(vocab.scores));
  const std::string path = write_file(writer, "defaults");

  const Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(path));
  EXPECT_EQ(tokenizer.bos(), 1);
  EXPECT_EQ(tokenizer.eos(), 2);
  EXPECT_EQ(tokenizer.vocab().unk, 0);
  EXPECT_TRUE(tokenizer.vocab().add_bos);
  EXPECT_TRUE(tokenizer.vocab().add_space_prefix);
  EXPECT_EQ(tokenizer.vocab().kinds, std::vector<TokenKind>(vocab.tokens.size(), TokenKind::NORMAL));
}

TEST(TokenizerFromGguf, OtherTokenizerModelsAreRefusedByName) {
  const std::string path = write_file(tokenizer_writer(tiny_vocab(true), "bert"), "bert");
  const std::string error = from_gguf_error(path);
  EXPECT_CONTAINS(error, path);
  EXPECT_CONTAINS(error,
                  "tokenizer model 'bert' is not supported; cleave supports 'llama' "
                  "(SentencePiece) and 'gpt2' (byte-level BPE) vocabularies");
}

TEST(TokenizerFromGguf, MissingTokensNameTheKey) {
  gguf::Writer writer;
  writer.set("tokenizer.ggml.model", gguf::Value::str("llama"));
  const std::string path = write_file(writer, "no_tokens");
  const std::string error = from_gguf_error(path);
  EXPECT_CONTAINS(error, path);
  EXPECT_CONTAINS(error, "tokenizer.ggml.tokens");
}

TEST(TokenizerFromGguf, MismatchedLengthsNameTheKey) {
  Vocabulary vocab = tiny_vocab(true);
  gguf::Writer writer = tokenizer_writer(vocab);
  vocab.scores.pop_back();
  writer.set("tokenizer.ggml.scores", gguf::Value::f32_array(vocab.scores));
  const std::string path = write_file(writer, "short_scores");
  const std::string error = from_gguf_error(path);
  EXPECT_CONTAINS(error, path);
  EXPECT_CONTAINS(error, "tokenizer.ggml.scores has 12 entries but tokenizer.ggml.tokens has 13");
}

TEST(TokenizerFromGguf, OutOfRangeIdsAndTypesNameTheKey) {
  gguf::Writer bad_eos = tokenizer_writer(tiny_vocab(true));
  bad_eos.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(13));
  const std::string eos_error = from_gguf_error(write_file(bad_eos, "bad_eos"));
  EXPECT_CONTAINS(eos_error, "tokenizer.ggml.eos_token_id = 13 is outside the vocabulary");

  Vocabulary vocab = tiny_vocab(true);
  gguf::Writer bad_type = tokenizer_writer(vocab);
  std::vector<int32_t> types(vocab.tokens.size(), 1);
  types[4] = 9;
  bad_type.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
  const std::string type_error = from_gguf_error(write_file(bad_type, "bad_type"));
  EXPECT_CONTAINS(type_error, "tokenizer.ggml.token_type[4] = 9");
}

TEST(TokenizerFromGguf, WrongValueTypeNamesFileAndKey) {
  gguf::Writer writer = tokenizer_writer(tiny_vocab(true));
  writer.set("tokenizer.ggml.tokens", gguf::Value::u32(7));
  const std::string path = write_file(writer, "tokens_not_array");
  const std::string error = from_gguf_error(path);
  EXPECT_CONTAINS(error, path);
  EXPECT_CONTAINS(error, "tokenizer.ggml.tokens");
}

// Golden values from llama.cpp on the shared model (see shared/models/README.md).
Tokenizer load(const std::string& path) { return Tokenizer::from_gguf(*gguf::File::open(path)); }

const std::vector<TokenId> kPromptIds = {1, 403, 407, 261, 378};
const std::vector<TokenId> kContinuationIds = {432, 383, 286, 261, 376, 298, 315, 421,
                                               395, 317, 426, 338, 401, 396, 267, 337,
                                               410, 408, 419, 292, 411, 322, 265, 282,
                                               295, 433, 426, 385, 328, 432, 358, 394};
const std::string kContinuationText =
    ", there was a little girl named Lily. She loved to play outside in the park. One day, "
    "she saw";

TEST(Stories260KTokenizer, PromptMatchesLlamaCpp) {
  CLEAVE_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const Tokenizer tokenizer = load(path);
  EXPECT_EQ(tokenizer.size(), 512);
  EXPECT_EQ(tokenizer.bos(), 1);
  EXPECT_EQ(tokenizer.eos(), 2);
  EXPECT_EQ(tokenizer.encode("Once upon a time", true), kPromptIds);
  EXPECT_EQ(tokenizer.decode(kPromptIds), "Once upon a time");
}

TEST(Stories260KTokenizer, ContinuationDecodesToReferenceText) {
  CLEAVE_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const Tokenizer tokenizer = load(path);
  EXPECT_EQ(tokenizer.decode(kContinuationIds), kContinuationText);
  std::vector<TokenId> all = kPromptIds;
  all.insert(all.end(), kContinuationIds.begin(), kContinuationIds.end());
  EXPECT_EQ(tokenizer.decode(all), "Once upon a time" + kContinuationText);
  // Streaming piece by piece gives the same text after the prompt.
  std::string streamed;
  for (const TokenId id : kContinuationIds) streamed += tokenizer.piece(id);
  EXPECT_EQ(streamed, kContinuationText);
  // And the reference text encodes back to the ids the model generated.
  EXPECT_EQ(tokenizer.encode("Once upon a time" + kContinuationText, true), all);
}

TEST(Stories260KTokenizer, RoundTripsAsciiUtf8AndNewlines) {
  CLEAVE_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const Tokenizer tokenizer = load(path);
  const std::vector<std::string> texts = {
      "Once upon a time",
      "Lily and Ben went to the park.\nThey played all day!\n\n",
      "  two leading spaces, and  double  spaces ",
      "caf\xc3\xa9 au lait",                        // é: not in a 512-token vocabulary
      "\xe4\xb8\xad\xe6\x96\x87",                   // 中文
      "a smile \xf0\x9f\x98\x80 and tabs\t\tend",   // an emoji, byte by byte
      "x",
  };
  for (const std::string& text : texts) {
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text, true)), text) << text;
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text, false)), text) << text;
  }
}

TEST(Stories260KTokenizer, MultiByteCharactersUseByteTokens) {
  CLEAVE_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const Tokenizer tokenizer = load(path);
  const std::vector<TokenId> ids = tokenizer.encode("\xf0\x9f\x98\x80", false);
  // "▁" then the four bytes of U+1F600.
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(tokenizer.vocab().tokens[ids[0]], kSpace);
  const char* bytes[] = {"<0xF0>", "<0x9F>", "<0x98>", "<0x80>"};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(tokenizer.vocab().tokens[ids[i + 1]], bytes[i]);
    EXPECT_EQ(tokenizer.vocab().kinds[ids[i + 1]], TokenKind::BYTE);
  }
  EXPECT_EQ(tokenizer.encode("\n", false).back(), id_of(tokenizer, "<0x0A>"));
}

TEST(Stories260KTokenizer, EmptyTextIsJustBos) {
  CLEAVE_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const Tokenizer tokenizer = load(path);
  EXPECT_EQ(tokenizer.encode("", true), std::vector<TokenId>{1});
  EXPECT_TRUE(tokenizer.encode("", false).empty());
  EXPECT_EQ(tokenizer.decode({1}), "");
}

}  // namespace
}  // namespace cleave
