// Cutting text into pieces with a sequence of regular expressions, as the
// pre-tokenizers of byte-level BPE do (Hugging Face's Split with behavior
// "Isolated", llama.cpp's unicode_regex_split): each pattern in turn cuts
// every piece into its matches and the stretches between them. The patterns
// are PCRE2 with UTF and Unicode properties (\p{L}, \p{N}, \s), so Unicode
// classes come from PCRE2's tables, not from this project.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cleave {

// Bytes [start, start + size) of the text that was split.
struct TextSpan {
  size_t start = 0;
  size_t size = 0;
  bool operator==(const TextSpan& other) const {
    return start == other.start && size == other.size;
  }
};

class RegexSplitter {
 public:
  // Compiles the patterns (PCRE2_UTF | PCRE2_UCP, `$` only at the very end).
  // A pattern PCRE2 rejects throws std::invalid_argument naming the pattern,
  // the offset and PCRE2's message.
  explicit RegexSplitter(const std::vector<std::string>& patterns);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // The pieces of `text`, in order and without gaps: together they are the
  // whole text. A pattern only sees one piece at a time (its lookarounds end
  // at the piece's edges). Empty matches cut nothing. A byte that is not part
  // of valid UTF-8 is a piece of its own that no pattern sees, so any bytes
  // split. Safe to call from several threads at once.
  std::vector<TextSpan> split(std::string_view text) const;

 private:
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> patterns_;
};

}  // namespace cleave
