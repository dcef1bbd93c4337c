// Byte-level BPE: GPT-2's byte mapping, llama.cpp's pre-tokenizers by name,
// merge order, special tokens, GGUF `gpt2` loading and its errors, and round
// trips, on small hand-made vocabularies and llama.cpp's GPT-NeoX vocabulary.
#include "model/bpe.h"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "model/gguf.h"
#include "model/regex_split.h"
#include "model/tokenizer.h"
#include "tests/model/tokenizer_gguf_files.h"
#include "tests/support/expect.h"
#include "tests/support/shared_data.h"

namespace cleave {
namespace {

const std::string kG = "\xc4\xa0";  // U+0120 "Ġ", the byte-level character for a space

TEST(ByteLevelMapping, EveryByteHasItsOwnCharacterAndComesBack) {
  std::set<std::string> characters;
  for (int byte = 0; byte < 256; ++byte) {
    const std::string one(1, static_cast<char>(byte));
    const std::string character = byte_level_encode(one);
    characters.insert(character);
    EXPECT_EQ(byte_level_decode(character), one) << "byte " << byte;
  }
  EXPECT_EQ(characters.size(), 256u);
  EXPECT_EQ(byte_level_encode(" "), kG);
  EXPECT_EQ(byte_level_encode("\n"), "\xc4\x8a");  // Ċ
  EXPECT_EQ(byte_level_encode("a~!"), "a~!");
  EXPECT_EQ(byte_level_encode("\xc3\xa9"), "\xc3\x83\xc2\xa9");  // é's two bytes: Ã ©
  // A character outside the mapping is kept as written.
  EXPECT_EQ(byte_level_decode("x\xe4\xb8\xad"), "x\xe4\xb8\xad");
}

std::vector<std::string> pre_tokens(const std::string& name, const std::string& text) {
  const auto pre = find_pre_tokenizer(name);
  if (!pre) throw std::runtime_error("no pre-tokenizer " + name);
  const RegexSplitter splitter(pre->split_patterns);
  std::vector<std::string> out;
  for (const TextSpan& span : splitter.split(text))
    out.push_back(text.substr(span.start, span.size));
  return out;
}

using Pieces = std::vector<std::string>;

TEST(PreTokenizers, EveryNamedFamilyIsKnownAndOthersAreNot) {
  for (const char* name :
       {"default", "gpt-2", "llama-bpe", "llama3", "qwen2", "smollm", "deepseek-llm",
        "deepseek-coder", "falcon", "starcoder", "refact", "mpt", "gpt-neox", "command-r"}) {
    EXPECT_TRUE(find_pre_tokenizer(name).has_value()) << name;
    EXPECT_CONTAINS(known_pre_tokenizers(), name);
  }
  EXPECT_FALSE(find_pre_tokenizer("no-such-pre-tokenizer").has_value());
  EXPECT_TRUE(find_pre_tokenizer("llama-bpe")->ignore_merges);
  EXPECT_TRUE(find_pre_tokenizer("llama-bpe")->add_bos);
  EXPECT_FALSE(find_pre_tokenizer("gpt-2")->ignore_merges);
  EXPECT_FALSE(find_pre_tokenizer("gpt-2")->add_bos);
}

TEST(PreTokenizers, DigitsGroupAsEachFamilyDoes) {
  EXPECT_EQ(pre_tokens("gpt-2", "x 1234567"), (Pieces{"x", " 1234567"}));
  EXPECT_EQ(pre_tokens("llama-bpe", "x 1234567"), (Pieces{"x", " ", "123", "456", "7"}));
  EXPECT_EQ(pre_tokens("qwen2", "x 123"), (Pieces{"x", " ", "1", "2", "3"}));
  EXPECT_EQ(pre_tokens("starcoder", "x 123"), (Pieces{"x", " ", "1", "2", "3"}));
  EXPECT_EQ(pre_tokens("deepseek-coder", "x 123"), (Pieces{"x", " ", "1", "2", "3"}));
  EXPECT_EQ(pre_tokens("falcon", "x 1234567"), (Pieces{"x", " ", "123", "456", "7"}));
  EXPECT_EQ(pre_tokens("default", "x 1234567"), (Pieces{"x", " ", "123", "456", "7"}));
}

TEST(PreTokenizers, WordsPunctuationAndSpacesSplitAsInLlamaCpp) {
  EXPECT_EQ(pre_tokens("gpt-2", "Hello, world!  It's"),
            (Pieces{"Hello", ",", " world", "!", " ", " It", "'s"}));
  // Llama 3: a non-letter sticks to the word after it, newlines gather.
  EXPECT_EQ(pre_tokens("llama-bpe", "Hello,world\n\n  It'S"),
            (Pieces{"Hello", ",world", "\n\n", " ", " It", "'S"}));
  // DeepSeek's coder splits newlines off one by one, and CJK runs on their own.
  EXPECT_EQ(pre_tokens("deepseek-coder", "a\n\n\xe4\xb8\xad\xe6\x96\x87"),
            (Pieces{"a", "\n", "\n", "\xe4\xb8\xad\xe6\x96\x87"}));
  // DeepSeek's LLM keeps a trailing run of whitespace whole; its letters include
  // U+212A KELVIN SIGN and U+1FD3, which Unicode normalization would rewrite.
  EXPECT_EQ(pre_tokens("deepseek-llm", "\xe2\x84\xaa\xe1\xbf\x93 ab  "),
            (Pieces{"\xe2\x84\xaa\xe1\xbf\x93", " ab", "  "}));
}

// The 256 byte-level characters as tokens 0..255, then `extra` tokens, with
// <|end|> (control) and <ud> (user-defined) last.
struct TinyBpe {
  Vocabulary vocab;
  BpeRules rules;

  TinyBpe(const std::vector<std::string>& extra,
          std::vector<std::pair<std::string, std::string>> merges) {
    for (int byte = 0; byte < 256; ++byte)
      add(byte_level_encode(std::string(1, static_cast<char>(byte))));
    for (const std::string& token : extra) add(token);
    add("<|end|>", TokenKind::CONTROL);
    add("<ud>", TokenKind::USER_DEFINED);
    vocab.bos = vocab.eos = id("<|end|>");
    vocab.add_space_prefix = false;
    rules.merges = std::move(merges);
    rules.split_patterns = {kGpt2SplitPattern};
  }
  void add(const std::string& token, TokenKind kind = TokenKind::NORMAL) {
    vocab.tokens.push_back(token);
    vocab.scores.push_back(0.0f);
    vocab.kinds.push_back(kind);
  }
  TokenId id(const std::string& token) const {
    for (size_t i = 0; i < vocab.tokens.size(); ++i) {
      if (vocab.tokens[i] == token) return static_cast<TokenId>(i);
    }
    throw std::runtime_error("tiny vocabulary lacks " + token);
  }
  std::vector<TokenId> ids(const std::vector<std::string>& tokens) const {
    std::vector<TokenId> out;
    for (const std::string& token : tokens) out.push_back(id(token));
    return out;
  }
  Tokenizer tokenizer() const { return Tokenizer(vocab, rules); }
};

TEST(BpeMerge, EarlierMergesApplyFirst) {
  const TinyBpe ab_first({"ab", "bc"}, {{"a", "b"}, {"b", "c"}});
  EXPECT_EQ(ab_first.tokenizer().encode("abc", false), ab_first.ids({"ab", "c"}));
  const TinyBpe bc_first({"ab", "bc"}, {{"b", "c"}, {"a", "b"}});
  EXPECT_EQ(bc_first.tokenizer().encode("abc", false), bc_first.ids({"a", "bc"}));
}

TEST(BpeMerge, MergedSymbolsMergeAgain) {
  const TinyBpe bpe({"ab", "abc", kG + "a"}, {{"a", "b"}, {"ab", "c"}, {kG, "a"}});
  const Tokenizer tokenizer = bpe.tokenizer();
  EXPECT_EQ(tokenizer.encode("abc", false), bpe.ids({"abc"}));
  // In " abc", "a b" ranks before "Ġ a", and "ab c" then takes the "ab".
  EXPECT_EQ(tokenizer.encode("abc abc", false), bpe.ids({"abc", kG, "abc"}));
}

TEST(BpeMerge, MergesNeverCrossPreTokens) {
  // "b" and the space after it are in different pre-tokens ("ab", " a").
  const TinyBpe bpe({"b" + kG}, {{"b", kG}});
  EXPECT_EQ(bpe.tokenizer().encode("ab a", false), bpe.ids({"a", "b", kG, "a"}));
}

TEST(BpeMerge, IgnoreMergesTakesAPreTokenThatIsAToken) {
  // "abc" is a token no merge reaches.
  TinyBpe bpe({"ab", "abc"}, {{"a", "b"}});
  EXPECT_EQ(bpe.tokenizer().encode("abc", false), bpe.ids({"ab", "c"}));
  bpe.rules.ignore_merges = true;
  EXPECT_EQ(bpe.tokenizer().encode("abc", false), bpe.ids({"abc"}));
}

TEST(BpeMerge, AddPrefixSpaceWritesASpaceBeforeTheText) {
  TinyBpe bpe({kG + "a"}, {{kG, "a"}});
  bpe.rules.add_prefix_space = true;
  EXPECT_EQ(bpe.tokenizer().encode("a", false), bpe.ids({kG + "a"}));
  EXPECT_EQ(bpe.tokenizer().encode(" a", false), bpe.ids({kG + "a"}));
}

TEST(BpeSpecialTokens, ControlTokensAreTokensOnlyWithParseSpecial) {
  const TinyBpe bpe({"ab"}, {{"a", "b"}});
  const Tokenizer tokenizer = bpe.tokenizer();
  EXPECT_EQ(tokenizer.encode("ab<|end|>ab", false, /*parse_special=*/true),
            bpe.ids({"ab", "<|end|>", "ab"}));
  // As text, "<|end|>" is cut by the pre-tokenizer and spelled out.
  EXPECT_EQ(tokenizer.encode("ab<|end|>", false),
            bpe.ids({"ab", "<", "|", "e", "n", "d", "|", ">"}));
}

TEST(BpeSpecialTokens, UserDefinedTokensAreCutOutAndNeverMerged) {
  // "a<ud>b": without the cut, a and b are one pre-token; "a b"-style merges
  // across the user-defined token must not happen.
  const TinyBpe bpe({"ab"}, {{"a", "b"}});
  const Tokenizer tokenizer = bpe.tokenizer();
  for (const bool parse_special : {false, true}) {
    EXPECT_EQ(tokenizer.encode("a<ud>b", false, parse_special), bpe.ids({"a", "<ud>", "b"}));
    EXPECT_EQ(tokenizer.encode("<ud><ud>", false, parse_special), bpe.ids({"<ud>", "<ud>"}));
  }
  EXPECT_EQ(tokenizer.encode("ab", true), bpe.ids({"<|end|>", "ab"}));
}

TEST(BpeSpecialTokens, TheLongestSpecialTokenWins) {
  TinyBpe bpe({}, {});
  bpe.add("<|end|>x", TokenKind::CONTROL);
  const Tokenizer tokenizer = bpe.tokenizer();
  EXPECT_EQ(tokenizer.encode("<|end|>x<|end|>", false, true), bpe.ids({"<|end|>x", "<|end|>"}));
}

TEST(BpeDecode, PiecesAreBytesUserTextAndNothingForControl) {
  const TinyBpe bpe({kG + "a"}, {{kG, "a"}});
  const Tokenizer tokenizer = bpe.tokenizer();
  EXPECT_EQ(tokenizer.piece(bpe.id(kG + "a")), " a");
  EXPECT_EQ(tokenizer.piece(bpe.id("<ud>")), "<ud>");
  EXPECT_EQ(tokenizer.piece(bpe.id("<|end|>")), "");
  // é is two tokens, each half a character.
  const std::vector<TokenId> ids = tokenizer.encode("\xc3\xa9", false);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(tokenizer.piece(ids[0]), "\xc3");
  EXPECT_EQ(tokenizer.decode(ids), "\xc3\xa9");
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("x y", true)), "x y");
}

TEST(BpeRoundTrip, AnyTextDecodesToItself) {
  const TinyBpe bpe({kG + "a", "ab"}, {{kG, "a"}, {"a", "b"}});
  const Tokenizer tokenizer = bpe.tokenizer();
  const std::vector<std::string> texts = {
      "",
      "ab ab  ab\n\n\tab",
      "caf\xc3\xa9 na\xc3\xafve \xe4\xb8\xad\xe6\x96\x87 \xd0\xbc\xd0\xb8\xd1\x80",
      "emoji \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd and ZWJ "
      "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb",
      "invalid \xff\xfe bytes \xc3 and \xed\xa0\x80",
      "<ud> user <|end|> control",
      std::string("nul \0 inside", 12),
  };
  for (const std::string& text : texts) {
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text, false)), text);
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text, true)), text);
  }
}

// GGUF files with a `gpt2` tokenizer.
gguf::Writer gpt2_writer(const TinyBpe& bpe) {
  gguf::Writer writer;
  writer.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
  writer.set("tokenizer.ggml.tokens", gguf::Value::str_array(bpe.vocab.tokens));
  std::vector<int32_t> types;
  for (const TokenKind kind : bpe.vocab.kinds) types.push_back(static_cast<int32_t>(kind));
  writer.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
  std::vector<std::string> merges;
  for (const auto& [left, right] : bpe.rules.merges) merges.push_back(left + " " + right);
  writer.set("tokenizer.ggml.merges", gguf::Value::str_array(merges));
  writer.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(static_cast<uint32_t>(bpe.vocab.eos)));
  return writer;
}

std::string write_gguf(const gguf::Writer& writer, const std::string& name) {
  return test::write_scratch_gguf(writer, "bpe_" + name, name);
}

using test::from_gguf_error;

TEST(BpeFromGguf, ReadsTokensMergesAndPreTokenizer) {
  const TinyBpe bpe({"ab", "12"}, {{"a", "b"}, {"1", "2"}});
  gguf::Writer writer = gpt2_writer(bpe);
  writer.set("tokenizer.ggml.pre", gguf::Value::str("qwen2"));
  const Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(write_gguf(writer, "qwen2")));
  EXPECT_TRUE(tokenizer.byte_level());
  EXPECT_EQ(tokenizer.size(), static_cast<int32_t>(bpe.vocab.tokens.size()));
  // Only EOS is given: BOS is the same token. qwen2 splits digits one by one.
  EXPECT_EQ(tokenizer.bos(), bpe.id("<|end|>"));
  EXPECT_EQ(tokenizer.eos(), bpe.id("<|end|>"));
  EXPECT_FALSE(tokenizer.vocab().add_bos);
  EXPECT_EQ(tokenizer.vocab().kinds[bpe.id("<ud>")], TokenKind::USER_DEFINED);
  EXPECT_EQ(tokenizer.encode("ab12", false), bpe.ids({"ab", "1", "2"}));
}

TEST(BpeFromGguf, WithoutAPreTokenizerNameLlamaCppsDefaultApplies) {
  const TinyBpe bpe({"12"}, {{"1", "2"}});
  const Tokenizer tokenizer =
      Tokenizer::from_gguf(*gguf::File::open(write_gguf(gpt2_writer(bpe), "no_pre")));
  // default: digits in threes after GPT-2's split, so "12" merges, "1234" does not stay whole.
  EXPECT_EQ(tokenizer.encode("12", false), bpe.ids({"12"}));
  EXPECT_EQ(tokenizer.encode("1212", false), bpe.ids({"12", "1", "2"}));
}

TEST(BpeFromGguf, AnUnknownPreTokenizerNamesItAndTheFile) {
  gguf::Writer writer = gpt2_writer(TinyBpe({}, {}));
  writer.set("tokenizer.ggml.pre", gguf::Value::str("mystery-bpe"));
  const std::string path = write_gguf(writer, "unknown_pre");
  const std::string error = from_gguf_error(path);
  EXPECT_CONTAINS(
      error, path + ": tokenizer.ggml.pre = 'mystery-bpe' is a pre-tokenizer cleave does not know");
  EXPECT_CONTAINS(error, "llama-bpe");
}

TEST(BpeFromGguf, MissingOrMalformedMergesNameTheKey) {
  gguf::Writer no_merges = gpt2_writer(TinyBpe({}, {}));
  no_merges.set("tokenizer.ggml.merges", gguf::Value::u32(3));
  EXPECT_CONTAINS(from_gguf_error(write_gguf(no_merges, "merges_not_array")),
                  "tokenizer.ggml.merges");

  gguf::Writer bad_merge = gpt2_writer(TinyBpe({}, {}));
  bad_merge.set("tokenizer.ggml.merges", gguf::Value::str_array({"a b", "ab"}));
  const std::string path = write_gguf(bad_merge, "bad_merge");
  EXPECT_CONTAINS(
      from_gguf_error(path),
      path + ": tokenizer.ggml.merges[1] = 'ab' is not two tokens separated by a space");
}

TEST(BpeFromGguf, NoBosOrEosIsAnError) {
  const TinyBpe bpe({}, {});
  gguf::Writer writer;
  writer.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
  writer.set("tokenizer.ggml.tokens", gguf::Value::str_array(bpe.vocab.tokens));
  writer.set("tokenizer.ggml.merges", gguf::Value::str_array({}));
  const std::string path = write_gguf(writer, "no_bos_eos");
  EXPECT_CONTAINS(from_gguf_error(path), path + ": neither tokenizer.ggml.bos_token_id nor");
}

TEST(BpeFromGguf, GptNeoXCutsOutItsWhitespaceTokensAndRoundTrips) {
  CLEAVE_REQUIRE_SHARED(path, "models/vocab/ggml-vocab-gpt-neox.gguf");
  const Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(path));
  EXPECT_EQ(tokenizer.size(), 50432);
  EXPECT_EQ(tokenizer.vocab().tokens[tokenizer.bos()], "<|endoftext|>");
  // "  " (two spaces) is the user-defined token 50276, cut out before BPE.
  const std::vector<TokenId> ids = tokenizer.encode("a  b", false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], 50276);
  for (const std::string text :
       {"Hello world", "  indented\n\tcode();", "caf\xc3\xa9 \xf0\x9f\x98\x80"}) {
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text, true)), text);
  }
}

}  // namespace
}  // namespace cleave
