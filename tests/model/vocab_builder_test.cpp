// The demo's vocabulary builder: llama's token layout, whole words as one
// token, and exact encode/decode round trips for any text.
#include "model/vocab_builder.h"

#include <gtest/gtest.h>

#include <set>

namespace cleave {
namespace {

const std::string kSpace = "\xe2\x96\x81";

const std::vector<std::string> kCorpus = {
    "The patient reported mild chest pain after exercise.",
    "The doctor prescribed ibuprofen twice daily for two weeks.",
    "A 45 year old woman presented with fatigue and dizziness.",
    "Question: What are the symptoms of asthma? Answer: wheezing and a dry cough.",
};

TEST(VocabBuilder, LayoutFollowsLlama) {
  const Vocabulary v = build_vocabulary(kCorpus);
  ASSERT_GT(v.tokens.size(), 259u);
  EXPECT_EQ(v.tokens[0], "<unk>");
  EXPECT_EQ(v.kinds[0], TokenKind::UNKNOWN);
  EXPECT_EQ(v.tokens[1], "<s>");
  EXPECT_EQ(v.tokens[2], "</s>");
  EXPECT_EQ(v.kinds[1], TokenKind::CONTROL);
  EXPECT_EQ(v.tokens[3], "<0x00>");
  EXPECT_EQ(v.tokens[3 + 0x41], "<0x41>");
  EXPECT_EQ(v.tokens[258], "<0xFF>");
  for (int i = 3; i < 259; ++i) EXPECT_EQ(v.kinds[i], TokenKind::BYTE) << i;
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_EQ(v.unk, 0);
  EXPECT_EQ(v.scores.size(), v.tokens.size());
  EXPECT_EQ(v.kinds.size(), v.tokens.size());
  // No piece twice.
  std::set<std::string> unique(v.tokens.begin(), v.tokens.end());
  EXPECT_EQ(unique.size(), v.tokens.size());
}

TEST(VocabBuilder, CorpusWordsBecomeSingleTokens) {
  const Tokenizer tokenizer(build_vocabulary(kCorpus));
  const std::vector<TokenId> ids = tokenizer.encode("The patient reported chest pain", false);
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(tokenizer.vocab().tokens[ids[0]], kSpace + "The");
  EXPECT_EQ(tokenizer.vocab().tokens[ids[1]], kSpace + "patient");
  EXPECT_EQ(tokenizer.vocab().tokens[ids[4]], kSpace + "pain");
  // Punctuation stays a character of its own.
  const std::vector<TokenId> dotted = tokenizer.encode("exercise.", false);
  ASSERT_EQ(dotted.size(), 2u);
  EXPECT_EQ(tokenizer.vocab().tokens[dotted[1]], ".");
}

TEST(VocabBuilder, EveryTextRoundTrips) {
  const Tokenizer tokenizer(build_vocabulary(kCorpus));
  std::vector<std::string> texts = kCorpus;
  texts.push_back("Unseen words: zebra, quixotic!");
  texts.push_back("caf\xc3\xa9 \xe2\x98\x83 and tabs\tand\nnew lines");
  texts.push_back("patients patient pat p");  // longer and shorter than known words
  texts.push_back("  two leading spaces and a trailing one ");
  for (const std::string& text : texts) {
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text, true)), text) << text;
  }
}

TEST(VocabBuilder, MaxWordsKeepsTheMostFrequent) {
  const std::vector<std::string> corpus = {"apple apple apple pear pear fig"};
  VocabBuildOptions options;
  options.max_words = 2;
  const Tokenizer tokenizer(build_vocabulary(corpus, options));
  EXPECT_EQ(tokenizer.encode("apple pear", false).size(), 2u);
  EXPECT_GT(tokenizer.encode("fig", false).size(), 1u);
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("fig apple", false)), "fig apple");
}

TEST(VocabBuilder, IsDeterministic) {
  const Vocabulary a = build_vocabulary(kCorpus);
  const Vocabulary b = build_vocabulary(kCorpus);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.scores, b.scores);
}

}  // namespace
}  // namespace cleave
