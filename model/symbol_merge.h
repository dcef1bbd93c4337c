// The bottom-up merge both tokenizers run on one piece of text (llama.cpp's
// llm_tokenizer_spm and llm_tokenizer_bpe sessions): the text starts as one
// symbol per UTF-8 character, and the adjacent pair with the highest priority
// merges (the leftmost among equals) until no adjacent pair has a priority.
// SentencePiece ranks a pair by its merged piece's score, BPE by its place in
// the merge list.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/utf8.h"

namespace cleave {

namespace detail {

// Symbols are byte spans of the text kept in a linked list; `size == 0` marks
// a symbol that was absorbed by its left neighbour.
template <typename PairPriority>
class MergeSession {
 public:
  MergeSession(const std::string& text, const PairPriority& priority)
      : text_(text), priority_(priority) {}

  std::vector<std::pair<size_t, size_t>> run() {
    split_characters();
    for (int i = 1; i < static_cast<int>(symbols_.size()); ++i) consider_pair(i - 1, i);

    while (!candidates_.empty()) {
      const Bigram best = candidates_.top();
      candidates_.pop();
      Symbol& left = symbols_[best.left];
      Symbol& right = symbols_[best.right];
      // Symbols only grow, so a stale candidate shows as a changed total size.
      if (left.size == 0 || right.size == 0 || left.size + right.size != best.size) continue;

      left.size += right.size;
      right.size = 0;
      left.next = right.next;
      if (right.next >= 0) symbols_[right.next].prev = best.left;

      consider_pair(left.prev, best.left);
      consider_pair(best.left, left.next);
    }

    std::vector<std::pair<size_t, size_t>> spans;
    for (int i = symbols_.empty() ? -1 : 0; i != -1; i = symbols_[i].next) {
      spans.emplace_back(symbols_[i].start, symbols_[i].size);
    }
    return spans;
  }

 private:
  struct Symbol {
    int prev;
    int next;
    size_t start;
    size_t size;
  };
  struct Bigram {
    int left;
    int right;
    double priority;
    size_t size;
  };
  // Highest priority first; among equal priorities the leftmost pair.
  struct LowerPriority {
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.priority < b.priority || (a.priority == b.priority && a.left > b.left);
    }
  };

  void split_characters() {
    size_t offset = 0;
    while (offset < text_.size()) {
      const size_t size = std::min(utf8_sequence_length(static_cast<unsigned char>(text_[offset])),
                                   text_.size() - offset);
      const int index = static_cast<int>(symbols_.size());
      offset += size;
      symbols_.push_back({index - 1, offset == text_.size() ? -1 : index + 1, offset - size, size});
    }
  }

  void consider_pair(int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view text(text_);
    const Symbol& a = symbols_[left];
    const Symbol& b = symbols_[right];
    const std::optional<double> priority =
        priority_(text.substr(a.start, a.size), text.substr(b.start, b.size));
    if (!priority) return;
    candidates_.push({left, right, *priority, a.size + b.size});
  }

  const std::string& text_;
  const PairPriority& priority_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram, std::vector<Bigram>, LowerPriority> candidates_;
};

}  // namespace detail

// Merges the characters of `text` and returns the surviving symbols'
// (start, size) in text order. `priority(left, right)` gets two adjacent
// symbols (views into `text`) and returns their priority, higher first, or
// nullopt when they do not merge.
template <typename PairPriority>
std::vector<std::pair<size_t, size_t>> merge_symbols(const std::string& text,
                                                     const PairPriority& priority) {
  return detail::MergeSession<PairPriority>(text, priority).run();
}

}  // namespace cleave
