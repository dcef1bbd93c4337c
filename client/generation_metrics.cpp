#include "client/generation_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace cleave::data {

namespace {

// ---------------------------------------------------------------------------
// Text helpers on UTF-8 bytes.

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ascii_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// The byte length of the whitespace character starting at text[i], or 0.
// Perl's \s on a character string: ASCII space, \t \n \v \f \r, and the
// Unicode spaces (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000).
size_t whitespace_length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) {
    return static_cast<unsigned char>(text[k]);
  };
  const unsigned char c = byte(i);
  if (c == ' ' || (c >= '\t' && c <= '\r'))
    return 1;
  if (c == 0xC2 && i + 1 < text.size() &&
      (byte(i + 1) == 0x85 || byte(i + 1) == 0xA0))
    return 2;
  if (i + 2 >= text.size())
    return 0;
  const unsigned char c1 = byte(i + 1), c2 = byte(i + 2);
  if (c == 0xE1 && c1 == 0x9A && c2 == 0x80)
    return 3; // U+1680
  if (c == 0xE2 && c1 == 0x80 &&
      (c2 <= 0x8A || c2 == 0xA8 || c2 == 0xA9 || c2 == 0xAF)) {
    return 3; // U+2000-200A, 2028, 2029, 202F
  }
  if (c == 0xE2 && c1 == 0x81 && c2 == 0x9F)
    return 3; // U+205F
  if (c == 0xE3 && c1 == 0x80 && c2 == 0x80)
    return 3; // U+3000
  return 0;
}

// Splits at runs of whitespace (as whitespace_length defines it).
std::vector<std::string> split_whitespace(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  for (size_t i = 0; i < text.size();) {
    if (const size_t space = whitespace_length(text, i)) {
      if (!word.empty())
        words.push_back(std::move(word));
      word.clear();
      i += space;
    } else {
      word += text[i++];
    }
  }
  if (!word.empty())
    words.push_back(std::move(word));
  return words;
}

void replace_all(std::string &text, std::string_view from,
                 std::string_view to) {
  std::string out;
  size_t start = 0;
  for (size_t at; (at = text.find(from, start)) != std::string::npos;
       start = at + from.size()) {
    out.append(text, start, at - start).append(to);
  }
  out.append(text, start, std::string::npos);
  text = std::move(out);
}

// Perl's s/([A])([B])/.../g for two one-character classes: the leftmost
// match, then the search goes on after it, so matches never overlap (in
// "a.." only the first period is split off by the period rule).
template <typename First, typename Second>
std::string substitute_pairs(const std::string &text, First first,
                             Second second, const char *before,
                             const char *between, const char *after) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (i + 1 < text.size() && first(text[i]) && second(text[i + 1])) {
      out.append(before)
          .append(1, text[i])
          .append(between)
          .append(1, text[i + 1])
          .append(after);
      i += 2;
    } else {
      out += text[i++];
    }
  }
  return out;
}

// mteval's first punctuation rule: { | } ~ [ \ ] ^ _ ` space ! " # $ % &
// ( ) * + : ; < = > ? @ /  (not ' , - . digits or letters).
bool is_mteval_symbol(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') ||
         (c >= ' ' && c <= '&') || (c >= '(' && c <= '+') ||
         (c >= ':' && c <= '@') || c == '/';
}

// ---------------------------------------------------------------------------
// N-gram counting.

using NgramCounts = std::unordered_map<std::string, int64_t>;

// counts[n - 1]: the n-grams of `words` (joined by one space) and how often
// each occurs, for n = 1..max_n.
std::vector<NgramCounts> count_ngrams(const std::vector<std::string> &words,
                                      size_t max_n) {
  std::vector<NgramCounts> counts(max_n);
  for (size_t start = 0; start < words.size(); ++start) {
    std::string ngram;
    for (size_t n = 1; n <= max_n && start + n <= words.size(); ++n) {
      if (n > 1)
        ngram += ' ';
      ngram += words[start + n - 1];
      ++counts[n - 1][ngram];
    }
  }
  return counts;
}

// For each n-gram of any reference, the most times one reference has it.
std::vector<NgramCounts>
reference_maxima(const std::vector<std::vector<std::string>> &references,
                 size_t max_n) {
  std::vector<NgramCounts> maxima(max_n);
  for (const auto &reference : references) {
    const std::vector<NgramCounts> counts = count_ngrams(reference, max_n);
    for (size_t n = 0; n < max_n; ++n) {
      for (const auto &[ngram, count] : counts[n]) {
        int64_t &best = maxima[n][ngram];
        best = std::max(best, count);
      }
    }
  }
  return maxima;
}

int64_t ngrams_in(size_t length, size_t n) {
  return length >= n ? static_cast<int64_t>(length - n + 1) : 0;
}

// mteval's "closest" reference length: the first reference's length, then
// any nearer one, the shorter on a tie; empty references (mteval's padding)
// are passed over after the first.
int64_t closest_reference_length(
    size_t hypothesis_length,
    const std::vector<std::vector<std::string>> &references) {
  const auto distance = [&](int64_t length) {
    return std::llabs(static_cast<int64_t>(hypothesis_length) - length);
  };
  int64_t closest = static_cast<int64_t>(references.front().size());
  for (size_t k = 1; k < references.size(); ++k) {
    const auto length = static_cast<int64_t>(references[k].size());
    if (length == 0)
      continue;
    if (distance(length) < distance(closest) ||
        (distance(length) == distance(closest) && length < closest)) {
      closest = length;
    }
  }
  return closest;
}

struct TokenizedText {
  std::vector<std::string> hypothesis;
  std::vector<std::vector<std::string>> references;
};

std::vector<TokenizedText>
mteval_tokenize(const std::vector<ScoredText> &corpus) {
  std::vector<TokenizedText> tokenized;
  tokenized.reserve(corpus.size());
  for (const ScoredText &text : corpus) {
    if (text.references.empty()) {
      throw std::invalid_argument(
          "a generated text to score has no references: \"" +
          text.hypothesis.substr(0, 60) + "\"");
    }
    TokenizedText tokens{mteval_tokens(text.hypothesis), {}};
    for (const std::string &reference : text.references) {
      tokens.references.push_back(mteval_tokens(reference));
    }
    tokenized.push_back(std::move(tokens));
  }
  return tokenized;
}

// Calls matched(n, ngram, clipped) for every (n+1)-gram of the hypothesis,
// n < order, that some reference holds, with its count clipped to the most
// any one reference holds (BLEU's and NIST's matches alike).
template <class Matched>
void for_each_clipped_match(const TokenizedText &text, size_t order,
                            Matched &&matched) {
  const std::vector<NgramCounts> hypothesis =
      count_ngrams(text.hypothesis, order);
  const std::vector<NgramCounts> maxima =
      reference_maxima(text.references, order);
  for (size_t n = 0; n < order; ++n) {
    for (const auto &[ngram, count] : hypothesis[n]) {
      const auto found = maxima[n].find(ngram);
      if (found != maxima[n].end())
        matched(n, ngram, std::min(count, found->second));
    }
  }
}

BleuCounts bleu_counts_of(const std::vector<TokenizedText> &corpus) {
  constexpr size_t kOrder = 4;
  BleuCounts totals;
  for (const TokenizedText &text : corpus) {
    for_each_clipped_match(
        text, kOrder, [&](size_t n, const std::string &, int64_t clipped) {
          totals.matches[n] += clipped;
        });
    for (size_t n = 0; n < kOrder; ++n) {
      totals.hypothesis[n] += ngrams_in(text.hypothesis.size(), n + 1);
    }
    totals.reference_length +=
        closest_reference_length(text.hypothesis.size(), text.references);
  }
  return totals;
}

// mteval's NIST length penalty: 1 from a ratio of 1 up, 0.5 at a ratio of 2/3.
double nist_length_penalty(double ratio) {
  if (ratio >= 1)
    return 1;
  if (ratio <= 0)
    return 0;
  const double beta = -std::log(0.5) / (std::log(1.5) * std::log(1.5));
  return std::exp(-beta * std::log(ratio) * std::log(ratio));
}

// ---------------------------------------------------------------------------
// PTB-style tokens for ROUGE-L.

bool is_coco_punctuation(const std::string &token) {
  static const char *const kPunctuation[] = {
      "''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".",
      "?",  "!", ",",  ":", "-",     "--",    "...",   ";"};
  for (const char *punctuation : kPunctuation) {
    if (token == punctuation)
      return true;
  }
  return false;
}

// Letters of words: ASCII letters and digits, and any non-ASCII byte but
// those of a currency sign (UTF-8 of é, ü, ... belongs to the word).
size_t currency_length(std::string_view text, size_t i) {
  if (text[i] == '$')
    return 1;
  if (text.compare(i, 2, "\xC2\xA3") == 0)
    return 2; // £
  if (text.compare(i, 3, "\xE2\x82\xAC") == 0)
    return 3; // €
  return 0;
}
bool is_word_byte(std::string_view text, size_t i) {
  return is_ascii_alnum(text[i]) ||
         (static_cast<unsigned char>(text[i]) >= 0x80 &&
          currency_length(text, i) == 0);
}

// The clitic (lowercase) that starts at text[i] and ends the word, or "".
std::string_view clitic_at(std::string_view word, size_t i) {
  static const char *const kClitics[] = {"n't", "'s", "'re", "'ve",
                                         "'ll", "'d", "'m"};
  for (const char *clitic : kClitics) {
    const std::string_view candidate(clitic);
    if (word.size() - i == candidate.size() && word.substr(i) == candidate)
      return candidate;
  }
  return {};
}

// One whitespace-free chunk of lowercased text into PTB-style tokens.
void ptb_split(std::string_view chunk, std::vector<std::string> &tokens) {
  size_t i = 0;
  while (i < chunk.size()) {
    if (is_word_byte(chunk, i)) {
      // A word: letters and digits, with inner hyphens and apostrophes, and
      // periods or commas between digits (3.5, 1,000).
      size_t end = i + 1;
      while (end < chunk.size()) {
        const char c = chunk[end];
        const bool inner =
            end + 1 < chunk.size() && is_word_byte(chunk, end + 1);
        if (is_word_byte(chunk, end) || ((c == '-' || c == '\'') && inner) ||
            ((c == '.' || c == ',') && inner && is_digit(chunk[end - 1]) &&
             is_digit(chunk[end + 1]))) {
          ++end;
        } else {
          break;
        }
      }
      const std::string_view word = chunk.substr(i, end - i);
      size_t split = word.size();
      for (size_t k = 1; k < word.size(); ++k) {
        if (!clitic_at(word, k).empty()) {
          split = k;
          break;
        }
      }
      tokens.emplace_back(word.substr(0, split));
      if (split < word.size())
        tokens.emplace_back(word.substr(split));
      i = end;
    } else if (const size_t currency = currency_length(chunk, i)) {
      tokens.emplace_back(chunk.substr(i, currency));
      i += currency;
    } else if (chunk.compare(i, 3, "...") == 0 ||
               chunk.compare(i, 2, "--") == 0) {
      const size_t length = chunk[i] == '.' ? 3 : 2;
      tokens.emplace_back(chunk.substr(i, length));
      i += length;
    } else {
      // Any other character is a token of its own; brackets and quotes take
      // the PTB names Stanford's tokenizer gives them.
      static const std::pair<char, const char*> kPtbNames[] = {
          {'(', "-LRB-"}, {')', "-RRB-"}, {'{', "-LCB-"}, {'}', "-RCB-"},
          {'[', "-LSB-"}, {']', "-RSB-"}, {'"', "''"}};
      const auto named = std::find_if(std::begin(kPtbNames), std::end(kPtbNames),
                                      [&](const auto& entry) { return entry.first == chunk[i]; });
      if (named != std::end(kPtbNames)) {
        tokens.emplace_back(named->second);
      } else {
        tokens.emplace_back(1, chunk[i]);
      }
      ++i;
    }
  }
}

// Length of the longest common subsequence of two token lists.
size_t lcs_length(const std::vector<std::string> &a,
                  const std::vector<std::string> &b) {
  std::vector<size_t> previous(b.size() + 1, 0), current(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      current[j] = a[i - 1] == b[j - 1] ? previous[j - 1] + 1
                                        : std::max(previous[j], current[j - 1]);
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

} // namespace

std::vector<ReferenceGroup>
group_references(const std::vector<Record> &records) {
  std::vector<ReferenceGroup> groups;
  std::unordered_map<std::string, size_t> index_of;
  for (const Record &record : records) {
    const std::string where =
        record.line > 0 ? record.source + ":" + std::to_string(record.line)
                        : record.source;
    if (!record.has_prompt) {
      throw DataError(
          where +
          ": expected a {\"prompt\", \"completion\"} record (the prompt is "
          "what is "
          "generated from, the completion a reference), got a \"text\" record");
    }
    const auto [found, added] =
        index_of.try_emplace(record.prompt, groups.size());
    if (added)
      groups.push_back(ReferenceGroup{record.prompt, {}, where});
    groups[found->second].references.push_back(record.text);
  }
  return groups;
}

std::vector<std::string> mteval_tokens(std::string_view input, bool lowercase) {
  std::string text(input);
  replace_all(text, "<skipped>", "");
  replace_all(text, "-\n", "");
  replace_all(text, "\n", " ");
  replace_all(text, "&quot;", "\"");
  replace_all(text, "&amp;", "&");
  replace_all(text, "&lt;", "<");
  replace_all(text, "&gt;", ">");
  text = " " + text + " ";
  if (lowercase)
    std::transform(text.begin(), text.end(), text.begin(), ascii_lower);

  std::string spaced;
  for (const char c : text) {
    if (is_mteval_symbol(c)) {
      spaced.append(1, ' ').append(1, c).append(1, ' ');
    } else {
      spaced += c;
    }
  }
  const auto period_or_comma = [](char c) { return c == '.' || c == ','; };
  const auto not_digit = [](char c) { return !is_digit(c); };
  spaced = substitute_pairs(spaced, not_digit, period_or_comma, "", " ", " ");
  spaced = substitute_pairs(spaced, period_or_comma, not_digit, " ", " ", "");
  spaced = substitute_pairs(
      spaced, is_digit, [](char c) { return c == '-'; }, "", " ", " ");
  return split_whitespace(spaced);
}

std::vector<std::string> coco_tokens(std::string_view text) {
  std::string lowered(text);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(), ascii_lower);
  std::vector<std::string> tokens;
  for (const std::string &chunk : split_whitespace(lowered))
    ptb_split(chunk, tokens);
  tokens.erase(
      std::remove_if(tokens.begin(), tokens.end(), is_coco_punctuation),
      tokens.end());
  return tokens;
}

BleuCounts bleu_counts(const std::vector<ScoredText> &corpus) {
  return bleu_counts_of(mteval_tokenize(corpus));
}

double bleu_from_counts(const BleuCounts &counts) {
  if (counts.hypothesis[0] == 0)
    return 0;
  const double length_ratio = static_cast<double>(counts.reference_length) /
                              static_cast<double>(counts.hypothesis[0]);
  const double brevity_penalty = std::exp(std::min(0.0, 1 - length_ratio));
  double log_precision_sum = 0;
  double smoothing = 1;
  for (size_t n = 0; n < counts.matches.size(); ++n) {
    const auto hypothesis = static_cast<double>(counts.hypothesis[n]);
    // No n-grams of this order at all: mteval counts the precision as 1.
    if (counts.hypothesis[n] == 0)
      continue;
    if (counts.matches[n] == 0) {
      smoothing *= 2;
      log_precision_sum += std::log(1 / (smoothing * hypothesis));
    } else {
      log_precision_sum +=
          std::log(static_cast<double>(counts.matches[n]) / hypothesis);
    }
  }
  return std::exp(log_precision_sum /
                  static_cast<double>(counts.matches.size())) *
         brevity_penalty;
}

double corpus_bleu(const std::vector<ScoredText> &corpus) {
  return bleu_from_counts(bleu_counts(corpus));
}

double corpus_nist(const std::vector<ScoredText> &corpus) {
  constexpr size_t kOrder = 5;
  const std::vector<TokenizedText> tokenized = mteval_tokenize(corpus);

  // Information weights from every reference of the corpus:
  // info(w1..wn) = -log2(count(w1..wn) / count(w1..wn-1)), with the total
  // number of reference words in place of the count of the empty prefix.
  std::vector<NgramCounts> reference_counts(kOrder);
  int64_t reference_words = 0;
  size_t references_per_segment = 0;
  for (const TokenizedText &text : tokenized) {
    references_per_segment =
        std::max(references_per_segment, text.references.size());
    for (const auto &reference : text.references) {
      reference_words += static_cast<int64_t>(reference.size());
      const std::vector<NgramCounts> counts = count_ngrams(reference, kOrder);
      for (size_t n = 0; n < kOrder; ++n) {
        for (const auto &[ngram, count] : counts[n])
          reference_counts[n][ngram] += count;
      }
    }
  }
  if (reference_words == 0)
    return 0;
  const auto information = [&](const std::string &ngram, size_t n) {
    const double count = static_cast<double>(reference_counts[n].at(ngram));
    const double prefix_count =
        n == 0 ? static_cast<double>(reference_words)
               : static_cast<double>(reference_counts[n - 1].at(
                     ngram.substr(0, ngram.rfind(' '))));
    return -std::log2(count / prefix_count);
  };

  std::array<double, kOrder> matched_information{};
  std::array<int64_t, kOrder> hypothesis_ngrams{};
  for (const TokenizedText &text : tokenized) {
    for_each_clipped_match(
        text, kOrder,
        [&](size_t n, const std::string &ngram, int64_t clipped) {
          matched_information[n] +=
              information(ngram, n) * static_cast<double>(clipped);
        });
    for (size_t n = 0; n < kOrder; ++n) {
      hypothesis_ngrams[n] += ngrams_in(text.hypothesis.size(), n + 1);
    }
  }
  double score = 0;
  for (size_t n = 0; n < kOrder; ++n) {
    score += matched_information[n] /
             static_cast<double>(std::max<int64_t>(hypothesis_ngrams[n], 1));
  }
  const double mean_reference_length =
      static_cast<double>(reference_words) /
      static_cast<double>(references_per_segment);
  return score * nist_length_penalty(static_cast<double>(hypothesis_ngrams[0]) /
                                     mean_reference_length);
}

double rouge_l(const std::vector<std::string> &hypothesis,
               const std::vector<std::vector<std::string>> &references,
               double beta) {
  if (references.empty())
    throw std::invalid_argument("rouge_l: no references");
  static const std::vector<std::string> kEmpty{""};
  const std::vector<std::string> &candidate =
      hypothesis.empty() ? kEmpty : hypothesis;
  double best_precision = 0, best_recall = 0;
  for (const auto &given : references) {
    const std::vector<std::string> &reference = given.empty() ? kEmpty : given;
    const auto common = static_cast<double>(lcs_length(reference, candidate));
    best_precision = std::max(best_precision,
                              common / static_cast<double>(candidate.size()));
    best_recall =
        std::max(best_recall, common / static_cast<double>(reference.size()));
  }
  if (best_precision == 0 || best_recall == 0)
    return 0;
  return (1 + beta * beta) * best_precision * best_recall /
         (best_recall + beta * beta * best_precision);
}

double corpus_rouge_l(const std::vector<ScoredText> &corpus) {
  if (corpus.empty())
    return 0;
  double sum = 0;
  for (const ScoredText &text : corpus) {
    if (text.references.empty()) {
      throw std::invalid_argument(
          "a generated text to score has no references: \"" +
          text.hypothesis.substr(0, 60) + "\"");
    }
    std::vector<std::vector<std::string>> references;
    for (const std::string &reference : text.references)
      references.push_back(coco_tokens(reference));
    sum += rouge_l(coco_tokens(text.hypothesis), references);
  }
  return sum / static_cast<double>(corpus.size());
}

namespace {

// The tf-idf vector of one sentence, per n, with its norms and its length
// (its number of bigrams, as pycocoevalcap counts it).
constexpr size_t kCiderOrder = 4;

struct CiderVector {
  std::array<std::unordered_map<std::string, double>, kCiderOrder> weights;
  std::array<double, kCiderOrder> norms{};
  double length = 0;
};

// `counts`: count_ngrams(tokens, kCiderOrder); document frequencies per n.
CiderVector cider_vector(const std::vector<NgramCounts> &counts,
                         const std::vector<NgramCounts> &document_frequency,
                         double log_documents) {
  CiderVector vector;
  for (size_t n = 0; n < kCiderOrder; ++n) {
    for (const auto &[gram, count] : counts[n]) {
      const auto df = document_frequency[n].find(gram);
      const double idf =
          log_documents -
          std::log(std::max(1.0, df == document_frequency[n].end()
                                     ? 0.0
                                     : static_cast<double>(df->second)));
      const double weight = static_cast<double>(count) * idf;
      vector.weights[n][gram] = weight;
      vector.norms[n] += weight * weight;
      if (n == 1)
        vector.length += static_cast<double>(count);
    }
    vector.norms[n] = std::sqrt(vector.norms[n]);
  }
  return vector;
}

// pycocoevalcap's sim(): per n the clipped cosine with the length penalty.
std::array<double, kCiderOrder> cider_similarity(const CiderVector &hypothesis,
                                                 const CiderVector &reference) {
  constexpr double kSigma = 6.0;
  const double delta = hypothesis.length - reference.length;
  std::array<double, kCiderOrder> value{};
  for (size_t n = 0; n < kCiderOrder; ++n) {
    for (const auto &[gram, weight] : hypothesis.weights[n]) {
      const auto in_reference = reference.weights[n].find(gram);
      if (in_reference == reference.weights[n].end())
        continue;
      value[n] += std::min(weight, in_reference->second) * in_reference->second;
    }
    if (hypothesis.norms[n] != 0 && reference.norms[n] != 0)
      value[n] /= hypothesis.norms[n] * reference.norms[n];
    value[n] *= std::exp(-(delta * delta) / (2 * kSigma * kSigma));
  }
  return value;
}

} // namespace

double corpus_cider(const std::vector<ScoredText> &corpus) {
  if (corpus.empty())
    return 0;
  std::vector<std::vector<NgramCounts>> hypotheses;
  std::vector<std::vector<std::vector<NgramCounts>>> references;
  std::vector<NgramCounts> document_frequency(kCiderOrder);
  for (const ScoredText &text : corpus) {
    if (text.references.empty()) {
      throw std::invalid_argument(
          "a generated text to score has no references: \"" +
          text.hypothesis.substr(0, 60) + "\"");
    }
    hypotheses.push_back(count_ngrams(coco_tokens(text.hypothesis), kCiderOrder));
    references.emplace_back();
    std::vector<std::set<std::string>> in_segment(kCiderOrder);
    for (const std::string &reference : text.references) {
      references.back().push_back(
          count_ngrams(coco_tokens(reference), kCiderOrder));
      for (size_t n = 0; n < kCiderOrder; ++n) {
        for (const auto &[gram, count] : references.back().back()[n])
          in_segment[n].insert(gram);
      }
    }
    for (size_t n = 0; n < kCiderOrder; ++n) {
      for (const std::string &gram : in_segment[n])
        ++document_frequency[n][gram];
    }
  }
  const double log_documents = std::log(static_cast<double>(corpus.size()));
  double sum = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const CiderVector hypothesis =
        cider_vector(hypotheses[i], document_frequency, log_documents);
    double segment = 0;
    for (const std::vector<NgramCounts> &counts : references[i]) {
      const std::array<double, kCiderOrder> value = cider_similarity(
          hypothesis, cider_vector(counts, document_frequency, log_documents));
      double mean = 0;
      for (double v : value)
        mean += v / kCiderOrder;
      segment += mean;
    }
    sum += 10.0 * segment / static_cast<double>(references[i].size());
  }
  return sum / static_cast<double>(corpus.size());
}

GenerationScores score_generations(const std::vector<ScoredText> &corpus) {
  GenerationScores scores;
  scores.bleu = corpus_bleu(corpus);
  scores.nist = corpus_nist(corpus);
  scores.rouge_l = corpus_rouge_l(corpus);
  scores.cider = corpus_cider(corpus);
  return scores;
}

} // namespace cleave::data
