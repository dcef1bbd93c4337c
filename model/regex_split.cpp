// PCRE2 (8-bit) behind RegexSplitter: compiled once, matched with JIT when
// the platform has it, one match-data block per call so threads can share it.
#include "model/regex_split.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <new>
#include <stdexcept>
#include <utility>

#include "model/utf8.h"

namespace cleave {
namespace {

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
using MatchData = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int length = pcre2_get_error_message(code, buffer, sizeof buffer);
  if (length < 0) return "PCRE2 error " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(length));
}

// A piece during splitting; `opaque` pieces (invalid UTF-8) bypass the patterns.
struct Piece {
  TextSpan span;
  bool opaque;
};

}  // namespace

struct RegexSplitter::Compiled {
  std::string source;
  std::unique_ptr<pcre2_code, CodeDeleter> code;
};

RegexSplitter::RegexSplitter(const std::vector<std::string>& patterns) {
  for (const std::string& source : patterns) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &error, &error_offset, nullptr);
    if (code == nullptr) {
      throw std::invalid_argument("regular expression '" + source +
                                  "' does not compile at offset " + std::to_string(error_offset) +
                                  ": " + pcre2_message(error));
    }
    // Without JIT (an unsupported platform) PCRE2 interprets the pattern: slower, same result.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    auto compiled = std::make_unique<Compiled>();
    compiled->source = source;
    compiled->code.reset(code);
    patterns_.push_back(std::move(compiled));
  }
}

RegexSplitter::~RegexSplitter() = default;

std::vector<TextSpan> RegexSplitter::split(std::string_view text) const {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  std::vector<Piece> pieces;
  // Valid UTF-8 runs for the patterns; each stray byte on its own.
  size_t run_start = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t length = valid_utf8_length(bytes + at, text.size() - at);
    if (length > 0) {
      at += length;
      continue;
    }
    if (at > run_start) pieces.push_back({{run_start, at - run_start}, false});
    pieces.push_back({{at, 1}, true});
    run_start = ++at;
  }
  if (text.size() > run_start) pieces.push_back({{run_start, text.size() - run_start}, false});

  for (const auto& pattern : patterns_) {
    MatchData match(pcre2_match_data_create_from_pattern(pattern->code.get(), nullptr));
    if (!match) throw std::bad_alloc();
    std::vector<Piece> cut;
    cut.reserve(pieces.size());
    for (const Piece& piece : pieces) {
      if (piece.opaque) {
        cut.push_back(piece);
        continue;
      }
      const auto* subject = bytes + piece.span.start;
      const size_t size = piece.span.size;
      size_t search_from = 0;
      size_t kept_until = 0;  // start of the stretch no match has covered yet
      while (search_from <= size) {
        // The piece was checked above (PCRE2 refuses malformed UTF-8 in a subject),
        // so PCRE2 need not scan it again on every call.
        uint32_t options = PCRE2_NO_UTF_CHECK;
        int rc = pcre2_match(pattern->code.get(), subject, size, search_from, options, match.get(),
                             nullptr);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
          // JIT's fixed stack ran out on a long piece; the interpreter uses the heap.
          options |= PCRE2_NO_JIT;
          rc = pcre2_match(pattern->code.get(), subject, size, search_from, options, match.get(),
                           nullptr);
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          throw std::runtime_error("regular expression '" + pattern->source +
                                   "' failed on a piece of " + std::to_string(size) +
                                   " bytes: " + pcre2_message(rc));
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
        const size_t match_start = ovector[0];
        const size_t match_end = ovector[1];
        if (match_end < match_start) {
          throw std::runtime_error("regular expression '" + pattern->source +
                                   "' reported a match that ends before it starts (\\K?)");
        }
        if (match_end == match_start) {
          // An empty match cuts nothing; look again one character further on.
          if (match_start >= size) break;
          search_from = match_start + valid_utf8_length(subject + match_start, size - match_start);
          continue;
        }
        if (match_start > kept_until) {
          cut.push_back({{piece.span.start + kept_until, match_start - kept_until}, false});
        }
        cut.push_back({{piece.span.start + match_start, match_end - match_start}, false});
        kept_until = search_from = match_end;
      }
      if (size > kept_until)
        cut.push_back({{piece.span.start + kept_until, size - kept_until}, false});
    }
    pieces = std::move(cut);
  }

  std::vector<TextSpan> spans;
  spans.reserve(pieces.size());
  for (const Piece& piece : pieces) spans.push_back(piece.span);
  return spans;
}

}  // namespace cleave
