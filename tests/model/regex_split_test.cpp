// RegexSplitter: PCRE2 patterns applied in turn, matches and the text between
// them as pieces, Unicode classes, invalid UTF-8 and long inputs.
#include "model/regex_split.h"

#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace cleave {
namespace {

std::vector<std::string> pieces(const RegexSplitter& splitter, const std::string& text) {
  std::vector<std::string> out;
  for (const TextSpan& span : splitter.split(text))
    out.push_back(text.substr(span.start, span.size));
  return out;
}

using Pieces = std::vector<std::string>;

TEST(RegexSplit, MatchesAndTheTextBetweenThemArePieces) {
  const RegexSplitter digits({R"(\p{N}+)"});
  EXPECT_EQ(pieces(digits, "ab12cd345"), (Pieces{"ab", "12", "cd", "345"}));
  EXPECT_EQ(pieces(digits, "12"), (Pieces{"12"}));
  EXPECT_EQ(pieces(digits, "none"), (Pieces{"none"}));
  EXPECT_TRUE(pieces(digits, "").empty());
}

TEST(RegexSplit, EachPatternCutsEveryPieceOfThePreviousOne) {
  // Words first, then single digits within the pieces between them.
  const RegexSplitter splitter({R"(\p{L}+)", R"(\p{N})"});
  EXPECT_EQ(pieces(splitter, "ab12 cd"), (Pieces{"ab", "1", "2", " ", "cd"}));
}

TEST(RegexSplit, UnicodeClassesComeFromPcre2) {
  const RegexSplitter letters({R"(\p{L}+)"});
  // é, ö, 中文 and Cyrillic are letters; the emoji and the spaces are not.
  EXPECT_EQ(pieces(letters,
                   "h\xc3\xa9llo w\xc3\xb6rld "
                   "\xe4\xb8\xad\xe6\x96\x87\xf0\x9f\x98\x80\xd0\xbc\xd0\xb8\xd1\x80"),
            (Pieces{"h\xc3\xa9llo", " ", "w\xc3\xb6rld", " ", "\xe4\xb8\xad\xe6\x96\x87",
                    "\xf0\x9f\x98\x80", "\xd0\xbc\xd0\xb8\xd1\x80"}));
  // Arabic-Indic digits are numbers; U+3000 (ideographic space) is a space.
  const RegexSplitter numbers_and_spaces({R"(\p{N}+|\s+)"});
  EXPECT_EQ(pieces(numbers_and_spaces,
                   "a\xd9\xa3\xd9\xa4\xe3\x80\x80"
                   "b"),
            (Pieces{"a", "\xd9\xa3\xd9\xa4", "\xe3\x80\x80", "b"}));
}

TEST(RegexSplit, LookaheadAndDollarStopAtThePieceEdge) {
  // GPT-2's trailing-space rule: a run of spaces leaves its last one to the word after it...
  const RegexSplitter gpt2_spaces({R"( ?\p{L}+|\s+(?!\S))"});
  EXPECT_EQ(pieces(gpt2_spaces, "a   b"), (Pieces{"a", "  ", " b"}));
  // ...but at the end of the text the whole run is one piece.
  EXPECT_EQ(pieces(gpt2_spaces, "a   "), (Pieces{"a", "   "}));
  // A second pattern sees each piece on its own: "$" is the piece's end, and
  // only at the very end (not before a final newline).
  const RegexSplitter trailing({R"(x+)", R"(\s+$)"});
  EXPECT_EQ(pieces(trailing, "a  xb  "), (Pieces{"a", "  ", "x", "b", "  "}));
  const RegexSplitter dollar_end_only({R"(a$)"});
  EXPECT_EQ(pieces(dollar_end_only, "a\n"), (Pieces{"a\n"}));
}

TEST(RegexSplit, CaseInsensitiveGroupsWork) {
  const RegexSplitter contractions({R"((?i:'s|'ll)|\p{L}+)"});
  EXPECT_EQ(pieces(contractions, "it'S we'LL"), (Pieces{"it", "'S", " ", "we", "'LL"}));
}

TEST(RegexSplit, EmptyMatchesCutNothing) {
  const RegexSplitter maybe_x({"x*"});
  EXPECT_EQ(pieces(maybe_x, "abxxc"), (Pieces{"ab", "xx", "c"}));
  EXPECT_EQ(pieces(maybe_x, "\xc3\xa9\xc3\xa9"), (Pieces{"\xc3\xa9\xc3\xa9"}));
}

TEST(RegexSplit, InvalidUtf8BytesArePiecesOfTheirOwn) {
  const RegexSplitter letters({R"(\p{L}+)"});
  // A stray 0xFF, a lone lead byte, a surrogate (ED A0 80) and an overlong "/" (C0 AF).
  EXPECT_EQ(pieces(letters,
                   "ab\xff"
                   "cd"),
            (Pieces{"ab", "\xff", "cd"}));
  EXPECT_EQ(pieces(letters, "a\xc3"), (Pieces{"a", "\xc3"}));
  EXPECT_EQ(pieces(letters, "\xed\xa0\x80z"), (Pieces{"\xed", "\xa0", "\x80", "z"}));
  EXPECT_EQ(pieces(letters, "\xc0\xafq"), (Pieces{"\xc0", "\xaf", "q"}));
}

TEST(RegexSplit, PiecesAlwaysCoverTheWholeText) {
  const RegexSplitter llama3(
      {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"});
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 64);
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    for (int i = length(rng); i > 0; --i) text += static_cast<char>(byte(rng));
    std::string joined;
    size_t expected_start = 0;
    for (const TextSpan& span : llama3.split(text)) {
      EXPECT_EQ(span.start, expected_start) << "trial " << trial;
      EXPECT_GT(span.size, 0u) << "trial " << trial;
      expected_start = span.start + span.size;
      joined += text.substr(span.start, span.size);
    }
    EXPECT_EQ(joined, text) << "trial " << trial;
  }
}

// Long runs must not run PCRE2 out of stack (JIT falls back to the interpreter).
TEST(RegexSplit, LongRunsOfOneClassSplit) {
  const RegexSplitter gpt2(
      {R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"});
  const std::string spaces(1 << 20, ' ');
  EXPECT_EQ(pieces(gpt2, spaces + "a"), (Pieces{spaces.substr(1), " a"}));
  const std::string letters(1 << 20, 'q');
  EXPECT_EQ(gpt2.split(letters).size(), 1u);
}

TEST(RegexSplit, APatternPcre2RejectsNamesItself) {
  try {
    RegexSplitter({R"(\p{L}+)", "[unclosed"});
    FAIL() << "a pattern that does not compile was accepted";
  } catch (const std::invalid_argument& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("'[unclosed'"), std::string::npos) << message;
    EXPECT_NE(message.find("offset"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace cleave
