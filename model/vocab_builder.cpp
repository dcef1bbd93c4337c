#include "model/vocab_builder.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>

namespace cleave {
namespace {

const std::string kSpaceSymbol = "\xe2\x96\x81";  // U+2581, SentencePiece's space

size_t utf8_length(unsigned char lead) {
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// Splits into UTF-8 characters (a stray byte counts as one character).
std::vector<std::string> characters(const std::string& text) {
  std::vector<std::string> chars;
  for (size_t i = 0; i < text.size();) {
    const size_t n = std::min(utf8_length(static_cast<unsigned char>(text[i])), text.size() - i);
    chars.push_back(text.substr(i, n));
    i += n;
  }
  return chars;
}

bool is_word_character(const std::string& c) {
  if (c.size() > 1) return true;  // non-ASCII letters belong to words
  const unsigned char b = static_cast<unsigned char>(c[0]);
  return b >= 0x80 || std::isalnum(b);
}

struct Counted {
  std::string piece;
  int64_t count;
};

// Highest count first, then by bytes, so the order does not depend on maps.
void sort_by_count(std::vector<Counted>& pieces) {
  std::sort(pieces.begin(), pieces.end(), [](const Counted& a, const Counted& b) {
    return a.count > b.count || (a.count == b.count && a.piece < b.piece);
  });
}

}  // namespace

Vocabulary build_vocabulary(const std::vector<std::string>& texts, const VocabBuildOptions& options) {
  if (options.max_words < 0) throw std::invalid_argument("max_words must be >= 0");
  std::map<std::string, int64_t> char_counts;
  std::map<std::string, int64_t> word_counts;  // "▁word" -> occurrences
  for (const std::string& text : texts) {
    // As the encoder sees it: a space in front, every space as U+2581.
    const std::vector<std::string> chars = characters(" " + text);
    std::string word;
    bool in_word = false;
    auto finish_word = [&] {
      if (in_word && word.size() > kSpaceSymbol.size()) ++word_counts[word];
      in_word = false;
      word.clear();
    };
    for (size_t i = 0; i < chars.size(); ++i) {
      const std::string c = chars[i] == " " ? kSpaceSymbol : chars[i];
      ++char_counts[c];
      if (c == kSpaceSymbol) {
        finish_word();
        in_word = true;
        word = kSpaceSymbol;
      } else if (in_word && is_word_character(c)) {
        word += c;
      } else {
        finish_word();
      }
    }
    finish_word();
  }

  std::vector<Counted> words;
  for (const auto& [w, n] : word_counts) words.push_back({w, n});
  sort_by_count(words);
  if (options.max_words > 0 && static_cast<int64_t>(words.size()) > options.max_words) {
    words.resize(options.max_words);
  }
  // A prefix counts every occurrence of the words it starts.
  std::map<std::string, int64_t> prefix_counts;
  for (const Counted& w : words) {
    const std::vector<std::string> chars = characters(w.piece);
    std::string prefix = chars[0];
    for (size_t i = 1; i < chars.size(); ++i) {
      prefix += chars[i];
      prefix_counts[prefix] += w.count;
    }
  }

  Vocabulary vocab;
  auto add = [&](const std::string& piece, float score, TokenKind kind) {
    vocab.tokens.push_back(piece);
    vocab.scores.push_back(score);
    vocab.kinds.push_back(kind);
  };
  add("<unk>", 0.0f, TokenKind::UNKNOWN);
  add("<s>", 0.0f, TokenKind::CONTROL);
  add("</s>", 0.0f, TokenKind::CONTROL);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    add(name, 0.0f, TokenKind::BYTE);
  }
  vocab.unk = 0;
  vocab.bos = 1;
  vocab.eos = 2;

  std::vector<Counted> pieces;
  for (const auto& [c, n] : char_counts) pieces.push_back({c, n});
  for (const auto& [p, n] : prefix_counts) {
    if (!char_counts.count(p)) pieces.push_back({p, n});
  }
  sort_by_count(pieces);
  int64_t total = 0;
  for (const Counted& p : pieces) total += p.count;
  for (const Counted& p : pieces) {
    const double frequency = static_cast<double>(p.count) / static_cast<double>(total);
    add(p.piece, static_cast<float>(std::log(frequency)), TokenKind::NORMAL);
  }
  return vocab;
}

}  // namespace cleave
