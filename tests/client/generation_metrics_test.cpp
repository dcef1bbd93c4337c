// BLEU-4, NIST-5 and ROUGE-L against values worked out by hand from the
// definitions in the E2E challenge's scripts (mteval-v13a-sig.pl with the
// options measure_scores.py passes, pycocoevalcap's rouge.py). The n-gram
// counts of each example are in its comments.
#include "client/generation_metrics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace cleave::data {
namespace {

using Tokens = std::vector<std::string>;
constexpr double kTolerance = 1e-12;

// --- mteval tokenization ---------------------------------------------------

TEST(MtevalTokens, LowercasesAndSplitsAsTheDefaultRulesDo) {
  // "£20-25": the hyphen after a digit is split off, the pound sign stays on
  // the number (mteval splits only ASCII symbols); "25," and "rouge." lose
  // their comma and period (not between two digits); the apostrophe stays.
  EXPECT_EQ(mteval_tokens("The Eagle's price is £20-25, near Café Rouge."),
            (Tokens{"the", "eagle's", "price", "is", "£20", "-", "25", ",",
                    "near", "café", "rouge", "."}));
}

TEST(MtevalTokens, KeepsNumbersWholeAndSplitsSymbols) {
  // 3.5 and 1,000 keep their separators (digits on both sides); a,b splits;
  // the symbol rule pads ( ) / ! and the quote; &amp; is decoded first.
  EXPECT_EQ(
      mteval_tokens("3.5 stars (1,000 votes) a,b and/or \"x\"! A &amp; B"),
      (Tokens{"3.5", "stars", "(", "1,000", "votes", ")", "a", ",", "b", "and",
              "/", "or", "\"", "x", "\"", "!", "a", "&", "b"}));
  EXPECT_EQ(mteval_tokens("Family-Friendly", /*lowercase=*/false),
            (Tokens{"Family-Friendly"}));
  EXPECT_TRUE(mteval_tokens("   ").empty());
}

TEST(MtevalTokens, MatchesOfThePeriodRuleDoNotOverlap) {
  // s/([^0-9])([\.,])/$1 $2 /g on " x.. ": "x." matches, then the search
  // goes on after it, so the second period is split off only by the next
  // rule, s/([\.,])([^0-9])/ $1 $2/g, which sees ". " at the end.
  EXPECT_EQ(mteval_tokens("x.."), (Tokens{"x", ".", "."}));
  // "1.." : the first period follows a digit and precedes a period (not a
  // digit), so the second rule splits it; the second period precedes the
  // padding space.
  EXPECT_EQ(mteval_tokens("1.."), (Tokens{"1", ".", "."}));
}

// --- BLEU
// ---------------------------------------------------------------------

TEST(Bleu, HypothesisEqualToAReferenceScoresOne) {
  const std::vector<ScoredText> corpus{
      {"Blue Spice is a coffee shop in the city centre.",
       {"A coffee shop in the city centre area called Blue Spice.",
        "Blue Spice is a coffee shop in the city centre."}}};
  EXPECT_NEAR(corpus_bleu(corpus), 1.0, kTolerance);
}

TEST(Bleu, WorkedExampleWithClippingAndSmoothing) {
  // hyp  "the cat sat on the mat"     (6 tokens)
  // ref1 "the cat is on the mat"      (6)
  // ref2 "there is a cat on the mat"  (7)
  // 1-grams: the x2 (ref1 has 2), cat, on, mat match, sat not: 5/6
  // 2-grams: the cat, on the, the mat match; cat sat, sat on not: 3/5
  // 3-grams: on the mat matches; the cat sat, cat sat on, sat on the not: 1/4
  // 4-grams: none of the 3 match: mteval's smoothing gives 1/(2 * 3)
  // closest reference length 6 = hypothesis length: brevity penalty 1.
  // BLEU = (5/6 * 3/5 * 1/4 * 1/6)^(1/4) = (1/48)^(1/4) = 0.379918...
  const std::vector<ScoredText> corpus{
      {"the cat sat on the mat",
       {"the cat is on the mat", "there is a cat on the mat"}}};
  const BleuCounts counts = bleu_counts(corpus);
  EXPECT_EQ(counts.matches, (std::array<int64_t, 4>{5, 3, 1, 0}));
  EXPECT_EQ(counts.hypothesis, (std::array<int64_t, 4>{6, 5, 4, 3}));
  EXPECT_EQ(counts.reference_length, 6);
  EXPECT_NEAR(corpus_bleu(corpus), std::pow(1.0 / 48, 0.25), kTolerance);
  EXPECT_NEAR(corpus_bleu(corpus), 0.3799178428257963, 1e-12);
}

TEST(Bleu, PapineniClippingExample) {
  // hyp "the the the the the the the" (7), refs as above (lengths 6 and 7).
  // 1-grams: "the" clipped to 2 (most in one reference): 2/7
  // 2-, 3-, 4-grams ("the the" ...): no match, smoothed 1/(2*6), 1/(4*5),
  // 1/(8*4) closest reference length 7: brevity penalty 1.
  const std::vector<ScoredText> corpus{
      {"the the the the the the the",
       {"the cat is on the mat", "there is a cat on the mat"}}};
  const double expected =
      std::pow(2.0 / 7 * (1.0 / 12) * (1.0 / 20) * (1.0 / 32), 0.25);
  EXPECT_NEAR(corpus_bleu(corpus), expected, kTolerance);
}

TEST(Bleu, BrevityPenaltyUsesTheClosestReferenceShorterOnATie) {
  // hyp "a b c d e" (5): refs of 4 and 6 tokens are both 1 away; mteval
  // takes the shorter (4), so no penalty. All n-grams of the hypothesis are
  // in the second reference: BLEU 1. (With 6 it would be exp(1 - 6/5).)
  const std::vector<ScoredText> corpus{
      {"a b c d e", {"a b c d", "a b c d e f"}}};
  EXPECT_EQ(bleu_counts(corpus).reference_length, 4);
  EXPECT_NEAR(corpus_bleu(corpus), 1.0, kTolerance);

  // hyp "the cat" (2) against one reference of 6: p1 = 2/2, p2 = 1/1, and
  // no 3- or 4-grams in the hypothesis, which mteval counts as precision 1.
  // BLEU = exp(1 - 6/2) = exp(-2).
  const std::vector<ScoredText> short_hypothesis{
      {"the cat", {"the cat sat on the mat"}}};
  EXPECT_NEAR(corpus_bleu(short_hypothesis), std::exp(-2.0), kTolerance);
}

TEST(Bleu, IsCorpusLevelNotAMeanOfSentenceScores) {
  // A: hyp = ref "a b c d": matches 4,3,2,1 of 4,3,2,1; ref length 4.
  // B: hyp "x y", ref "x z": 1-grams 1/2, 2-grams 0/1, no 3- or 4-grams.
  // Sums: matches 5,3,2,1 of 6,4,2,1, ref length 6 = hyp length 6.
  // BLEU = (5/6 * 3/4 * 2/2 * 1/1)^(1/4) = 0.625^(1/4).
  const std::vector<ScoredText> corpus{{"a b c d", {"a b c d"}},
                                       {"x y", {"x z"}}};
  EXPECT_NEAR(corpus_bleu(corpus), std::pow(0.625, 0.25), kTolerance);
}

TEST(Bleu, EmptyHypotheses) {
  // Every hypothesis empty: no words, mteval's BLEU is 0.
  EXPECT_EQ(corpus_bleu({{"", {"a b c"}}, {"  ", {"d e"}}}), 0.0);
  // One empty hypothesis among others adds its reference length only:
  // matches = hypothesis n-grams 4,3,2,1; ref length 4 + 4 = 8; hyp length 4.
  // BLEU = exp(1 - 8/4) = exp(-1).
  const std::vector<ScoredText> corpus{{"a b c d", {"a b c d"}},
                                       {"", {"p q r s"}}};
  EXPECT_NEAR(corpus_bleu(corpus), std::exp(-1.0), kTolerance);
}

TEST(Bleu, TokenizationAndCaseDoNotCount) {
  // "The cat." and "the cat ." are the same three tokens after mteval's
  // lowercasing and period rule: 1-3-grams all match, no 4-gram: BLEU 1.
  EXPECT_NEAR(corpus_bleu({{"The cat.", {"the cat ."}}}), 1.0, kTolerance);
}

TEST(Bleu, NoMatchAtAllIsSmoothedNotZero) {
  // hyp "a b c d" vs ref "e f g h": 0 matches at every order, smoothed to
  // 1/(2*4), 1/(4*3), 1/(8*2), 1/(16*1); same lengths, no penalty.
  const double expected =
      std::pow(1.0 / 8 * (1.0 / 12) * (1.0 / 16) * (1.0 / 16), 0.25);
  EXPECT_NEAR(corpus_bleu({{"a b c d", {"e f g h"}}}), expected, kTolerance);
}

// --- NIST
// ---------------------------------------------------------------------

TEST(Nist, WorkedExample) {
  // Corpus of one segment, ref "a b a c" (4 words), hyp "a b d" (3).
  // Reference counts: a 2, b 1, c 1 of 4 words; "a b" 1, "b a" 1, "a c" 1.
  // info(a) = -log2(2/4) = 1, info(b) = -log2(1/4) = 2,
  // info("a b") = -log2(count("a b") / count(a)) = -log2(1/2) = 1.
  // Matched: 1-grams a (1) + b (2) = 3 over 3 hypothesis 1-grams = 1;
  // 2-grams "a b" (1) over 2 = 0.5; nothing longer matches: sum 1.5.
  // Length penalty: ratio 3 / (4 / 1 reference) = 0.75,
  // exp(-beta * ln(0.75)^2) with beta = -ln(0.5) / ln(1.5)^2.
  const double beta = -std::log(0.5) / (std::log(1.5) * std::log(1.5));
  const double penalty = std::exp(-beta * std::log(0.75) * std::log(0.75));
  EXPECT_NEAR(corpus_nist({{"a b d", {"a b a c"}}}), 1.5 * penalty, kTolerance);
  EXPECT_NEAR(1.5 * penalty, 1.0581, 1e-4);
}

TEST(Nist, LengthUsesTheLargestReferenceCount) {
  // Segment 1 has two references, segment 2 one (mteval pads it with an
  // empty one): mean reference length = (2 + 2 + 2) words / 2 sets = 3.
  // Counts: x 3, y 1, z 2 of 6 words; "x y" 1, "x z" 2.
  // hyp1 "x y": info(x) = -log2(3/6) = 1, info(y) = -log2(1/6),
  //   info("x y") = -log2(1/3).
  // hyp2 "x z": info(z) = -log2(2/6), info("x z") = -log2(2/3).
  // 1-grams: (1 + log2 6 + 1 + log2 3) / 4; 2-grams: (log2 3 + log2 1.5) / 2.
  // Hypothesis length 4 / 3 > 1: no penalty.
  const double unigrams = (2 + std::log2(6.0) + std::log2(3.0)) / 4;
  const double bigrams = (std::log2(3.0) + std::log2(1.5)) / 2;
  EXPECT_NEAR(corpus_nist({{"x y", {"x y", "x z"}}, {"x z", {"x z"}}}),
              unigrams + bigrams, kTolerance);
}

// --- ROUGE-L
// ------------------------------------------------------------------

TEST(RougeL, WorkedLcsExampleWithBeta12) {
  // hyp "the cat was found under the bed" (7), ref "the cat was under the bed"
  // (6): LCS 6, P = 6/7, R = 1;
  // F = (1 + 1.44) P R / (R + 1.44 P) = 2.44 * 6/7 / (1 + 1.44 * 6/7) =
  // 0.936061...
  const Tokens hypothesis{"the", "cat", "was", "found", "under", "the", "bed"};
  const Tokens reference{"the", "cat", "was", "under", "the", "bed"};
  const double p = 6.0 / 7, r = 1.0;
  EXPECT_NEAR(rouge_l(hypothesis, {reference}), 2.44 * p * r / (r + 1.44 * p),
              kTolerance);
  EXPECT_NEAR(rouge_l(hypothesis, {reference}), 0.9360613810741688, 1e-12);
  // LCS is not contiguous: "police killed the gunman" vs "police kill the
  // gunman": LCS 3 of 4 both ways, F = 0.75.
  EXPECT_NEAR(rouge_l({"police", "killed", "the", "gunman"},
                      {{"police", "kill", "the", "gunman"}}),
              0.75, kTolerance);
}

TEST(RougeL, PrecisionAndRecallAreEachTheBestOverReferences) {
  // hyp "a b c d": ref1 "a b" gives P 2/4, R 2/2; ref2 "a b c d e f g h"
  // gives P 4/4, R 4/8. pycocoevalcap takes max P = 1 and max R = 1
  // separately, so F = 1 (the best F of one reference would be lower).
  EXPECT_NEAR(rouge_l({"a", "b", "c", "d"},
                      {{"a", "b"}, {"a", "b", "c", "d", "e", "f", "g", "h"}}),
              1.0, kTolerance);
}

TEST(RougeL, EmptyAndDisjoint) {
  EXPECT_EQ(rouge_l({}, {{"a", "b"}}), 0.0);
  EXPECT_EQ(rouge_l({"x"}, {{"a", "b"}}), 0.0);
  // Both empty: Python's "".split(" ") is [""], which matches itself.
  EXPECT_EQ(rouge_l({}, {{}}), 1.0);
}

TEST(RougeL, CorpusMeanWithCocoTokens) {
  // Case and COCO's punctuation do not count: first segment 1; the second
  // has no common token: 0; mean 0.5.
  const std::vector<ScoredText> corpus{{"The cat, sat.", {"the cat sat"}},
                                       {"dog", {"the cat"}}};
  EXPECT_NEAR(corpus_rouge_l(corpus), 0.5, kTolerance);
}

TEST(CocoTokens, PtbStyle) {
  EXPECT_EQ(coco_tokens("The Eagle's price is £20-25, it isn't family-friendly "
                        "(3.5 stars)..."),
            (Tokens{"the", "eagle", "'s", "price", "is", "£", "20-25", "it",
                    "is", "n't", "family-friendly", "3.5", "stars"}));
  EXPECT_EQ(coco_tokens("\"Quoted\" -- text; really?!"),
            (Tokens{"quoted", "text", "really"}));
}

// --- scoring a corpus, grouping references
// --------------------------------------

TEST(ScoreGenerations, PerfectOutputs) {
  const std::vector<ScoredText> corpus{
      {"Blue Spice is a coffee shop in the city centre.",
       {"Blue Spice is a coffee shop in the city centre.",
        "A coffee shop called Blue Spice."}},
      {"The Wrestlers is a pub near the river.",
       {"The Wrestlers is a pub near the river."}}};
  const GenerationScores scores = score_generations(corpus);
  EXPECT_NEAR(scores.bleu, 1.0, kTolerance);
  EXPECT_NEAR(scores.rouge_l, 1.0, kTolerance);
  EXPECT_GT(scores.nist, 0.0);
  EXPECT_THROW(score_generations({{"x", {}}}), std::invalid_argument);
}

TEST(GroupReferences, ByPromptInFirstAppearanceOrder) {
  std::vector<Record> records;
  const auto add = [&](const std::string &prompt, const std::string &completion,
                       int64_t line) {
    Record record;
    record.prompt = prompt;
    record.text = completion;
    record.has_prompt = true;
    record.source = "e2e.jsonl";
    record.line = line;
    records.push_back(record);
  };
  add("name[A]", "A one.", 1);
  add("name[B]", "B one.", 2);
  add("name[A]", "A two.", 4);
  const std::vector<ReferenceGroup> groups = group_references(records);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].prompt, "name[A]");
  EXPECT_EQ(groups[0].references,
            (std::vector<std::string>{"A one.", "A two."}));
  EXPECT_EQ(groups[0].where, "e2e.jsonl:1");
  EXPECT_EQ(groups[1].references, (std::vector<std::string>{"B one."}));

  Record text;
  text.text = "no prompt";
  text.source = "e2e.jsonl";
  text.line = 7;
  records.push_back(text);
  try {
    group_references(records);
    FAIL() << "a text record was accepted";
  } catch (const DataError &e) {
    EXPECT_NE(std::string(e.what()).find("e2e.jsonl:7:"), std::string::npos)
        << e.what();
  }
}

// CIDEr-D worked by hand. Two segments, so log(documents) = L = log 2.
// Exact matches: per segment n = 1 and n = 2 have cosine 1, n = 3 and 4 have
// no n-grams (0), equal bigram counts (no length penalty): 10 x (1 + 1 + 0 +
// 0) / 4 = 5.
TEST(Cider, ExactMatchesOfTwoWordSegmentsScoreFive) {
  EXPECT_NEAR(corpus_cider({{"a b", {"a b"}}, {"c d", {"c d"}}}), 5.0, 1e-12);
  // Punctuation and case go as ROUGE-L's tokens do.
  EXPECT_NEAR(corpus_cider({{"A b.", {"a b"}}, {"c, d", {"C D"}}}), 5.0, 1e-12);
}

// "a b c" against "a b": every n-gram has document frequency 1 (or 0:
// "c", "b c", "a b c", counted as 1), so every weight is L. n = 1: cosine
// 2L^2 / (sqrt(3) L sqrt(2) L) = 2 / sqrt(6); n = 2: L^2 / (sqrt(2) L L) =
// 1 / sqrt(2); n = 3: the reference has none, 0. Bigrams 2 against 1: the
// penalty exp(-1 / 72). Segment: 10 (2/sqrt 6 + 1/sqrt 2) exp(-1/72) / 4 =
// 3.75647; "x y" scores 5; the corpus is their mean.
TEST(Cider, ClipsByTheReferenceAndPenalisesLength) {
  const double first = 10 * (2 / std::sqrt(6.0) + 1 / std::sqrt(2.0)) * std::exp(-1.0 / 72) / 4;
  EXPECT_NEAR(corpus_cider({{"a b c", {"a b"}}, {"x y", {"x y"}}}), (first + 5) / 2, 1e-12);
  // An n-gram in every segment's references carries no weight: "the" here.
  EXPECT_NEAR(corpus_cider({{"the cat", {"the cat"}}, {"the dog", {"the dog"}}}), 5.0, 1e-12);
  EXPECT_DOUBLE_EQ(corpus_cider({}), 0.0);
  EXPECT_THROW(corpus_cider({{"a", {}}}), std::invalid_argument);
}

// Two references a segment (the mean over them), against a transcription of
// pycocoevalcap's cider_scorer.py run on the same sentences: 5.138127850587297.
TEST(Cider, AveragesOverEachSegmentsReferences) {
  EXPECT_NEAR(corpus_cider({{"the cat sat on the mat", {"the cat sat on a mat", "a cat on the mat"}},
                            {"a dog ran", {"the dog ran away", "a dog ran"}}}),
              5.138127850587297, 1e-9);
  const GenerationScores scores = score_generations({{"a b", {"a b"}}, {"c d", {"c d"}}});
  EXPECT_NEAR(scores.cider, 5.0, 1e-12);
}

} // namespace
} // namespace cleave::data
