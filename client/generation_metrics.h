// Scores of generated text against human references, as the E2E NLG
// Challenge's official script (tuetschek/e2e-metrics, measure_scores.py)
// computes them, re-implemented here without tensors:
//
// - BLEU-4 and NIST-5 as its mteval-v13a-sig.pl run with the script's
//   options: the default (not "international") tokenization, lowercased,
//   one corpus-level score from n-gram counts summed over all segments,
//   clipped by the most occurrences in any one reference, the brevity penalty
//   from the closest reference length (ties to the shorter), and mteval's
//   default smoothing of an n-gram order without any match (1/2^k instead of
//   0; it only matters when a whole corpus has no match of some order).
// - ROUGE-L as MS-COCO's pycocoevalcap Rouge: per segment the LCS precision
//   and recall, each the best over the references (separately), combined as
//   an F-measure with beta = 1.2, then the mean over segments. Its tokenizer
//   is Stanford CoreNLP's PTBTokenizer (Java) with COCO's punctuation
//   removal; coco_tokens() approximates it (see there).
// - CIDEr-D as pycocoevalcap's Cider, on the same tokens (corpus_cider).
//
// Scores are fractions in [0, 1] (NIST is unbounded), as the script prints.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "client/dataset.h"

namespace cleave::data {

// One meaning representation's references, from prompt/completion records
// that share the prompt.
struct ReferenceGroup {
  std::string prompt;
  std::vector<std::string> references; // the completions, in file order
  std::string where;                   // "file:line" of its first record
};

// Groups records by identical prompt, in the order prompts first appear (as
// the E2E script groups references by MR). Throws DataError naming the file
// and line of a record without a prompt.
std::vector<ReferenceGroup>
group_references(const std::vector<Record> &records);

// A generated text and the references it is scored against.
struct ScoredText {
  std::string hypothesis;
  std::vector<std::string> references; // at least one
};

// mteval-v13a's default tokenization: SGML entities (&quot; &amp; &lt; &gt;)
// decoded, ASCII letters lowercased (when `lowercase`), the symbols
// !"#$%&()*+/:;<=>?@[\]^_`{|}~ split off, periods and commas split off
// unless both neighbours are digits in the way the script's regexes do it,
// a hyphen after a digit split off; apostrophes and other hyphens stay.
std::vector<std::string> mteval_tokens(std::string_view text,
                                       bool lowercase = true);

// The tokens ROUGE-L compares: lowercased PTB-style tokens with COCO's
// punctuation (. , ; : ? ! - -- ... quotes, brackets) removed. An
// approximation of Stanford's PTBTokenizer that agrees with it on plain
// English such as the E2E references: clitics ('s 're 've 'll 'd 'm n't)
// split off, hyphenated words and numbers like 20-25 or 3.5 kept whole,
// currency signs ($ £ €) split off; only ASCII letters are lowercased.
std::vector<std::string> coco_tokens(std::string_view text);

// The corpus-level counts BLEU and NIST are computed from (index n-1 for
// n-grams), exposed for tests and for reporting.
struct BleuCounts {
  std::array<int64_t, 4> matches{};    // clipped matching n-grams
  std::array<int64_t, 4> hypothesis{}; // n-grams in the hypotheses
  int64_t reference_length = 0;        // sum of the closest reference lengths
};
BleuCounts bleu_counts(const std::vector<ScoredText> &corpus);

// Corpus BLEU-4 in [0, 1]; 0 when every hypothesis is empty.
double bleu_from_counts(const BleuCounts &counts);
double corpus_bleu(const std::vector<ScoredText> &corpus);

// Corpus NIST-5 (mteval-v13a): information weights from the n-gram counts
// of all references of the corpus; the length penalty compares the
// hypotheses' length with the references' total length divided by the
// largest number of references any segment has (mteval pads the others with
// empty references).
double corpus_nist(const std::vector<ScoredText> &corpus);

// pycocoevalcap's ROUGE-L of one tokenized hypothesis against tokenized
// references; an empty token list counts as one empty token, as Python's
// "".split(" ") gives.
double rouge_l(const std::vector<std::string> &hypothesis,
               const std::vector<std::vector<std::string>> &references,
               double beta = 1.2);
// Mean over the corpus, with coco_tokens(); 0 for an empty corpus.
double corpus_rouge_l(const std::vector<ScoredText> &corpus);

// CIDEr-D as pycocoevalcap's Cider computes it (Vedantam et al. 2015, with
// its clipping and Gaussian length penalty): each segment's and each
// reference's 1- to 4-grams (coco_tokens()) weighted by term frequency times
// log(segments) - log(max(1, document frequency)), the document frequency
// counting the segments whose references hold the n-gram; per n the clipped
// cosine sum_g min(h_g, r_g) r_g / (|h| |r|) times exp(-(bigrams(h) -
// bigrams(r))^2 / (2 sigma^2)), sigma 6; the mean over n and over the
// references, times 10; then the mean over segments. 0 for an empty corpus.
double corpus_cider(const std::vector<ScoredText> &corpus);

struct GenerationScores {
  double bleu = 0;
  double nist = 0;
  double rouge_l = 0;
  double cider = 0;
};
// All of the above. Throws std::invalid_argument for a segment without
// references.
GenerationScores score_generations(const std::vector<ScoredText> &corpus);

} // namespace cleave::data
