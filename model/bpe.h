// Byte-level BPE, the half of Tokenizer behind GGUF `gpt2` vocabularies and
// Hugging Face ByteLevel tokenizers: the pre-tokenizer's regexes cut the text
// into pre-tokens, each byte of a pre-token is written as one printable
// character (GPT-2's bytes_to_unicode: "Ġ" for a space), and adjacent symbols
// merge in the order of the merge list, each pre-token on its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/regex_split.h"
#include "model/tokenizer.h"

namespace cleave {

// GPT-2's regex, as Hugging Face's ByteLevel pre-tokenizer applies it when use_regex is set.
extern const char* const kGpt2SplitPattern;

// The pre-tokenizer llama.cpp's llama-vocab.cpp uses for a tokenizer.ggml.pre name.
struct PreTokenizer {
  std::vector<std::string> split_patterns;
  bool ignore_merges = false;
  bool add_bos = false;  // the default for tokenizer.ggml.add_bos_token
};
// nullopt for a name cleave does not know.
std::optional<PreTokenizer> find_pre_tokenizer(const std::string& name);
// The names find_pre_tokenizer knows, comma-separated, for error messages.
std::string known_pre_tokenizers();

// A merge written "left right", cut where llama.cpp cuts it: at the first
// space after the first byte. nullopt if there is no such space.
std::optional<std::pair<std::string, std::string>> split_merge(const std::string& written);

// The characters that stand for `bytes` (GPT-2's bytes_to_unicode).
std::string byte_level_encode(std::string_view bytes);
// The bytes a byte-level token's text stands for. A character outside the
// 256 of the mapping is kept as it is written.
std::string byte_level_decode(std::string_view text);

class ByteLevelBpe {
 public:
  // Throws std::runtime_error for a pattern PCRE2 rejects.
  explicit ByteLevelBpe(const BpeRules& rules);

  // Appends the ids of `text`, which holds no special tokens; `token_ids` maps
  // each token's text to its id. As in llama.cpp and Hugging Face, a symbol
  // that is no token is spelled character by character, and a character that
  // is no token is dropped (a complete byte-level vocabulary has all 256).
  void encode(const std::string& text, const std::unordered_map<std::string, TokenId>& token_ids,
              std::vector<TokenId>& ids) const;

 private:
  std::optional<double> merge_priority(std::string_view left, std::string_view right) const;

  std::unique_ptr<const RegexSplitter> splitter_;
  std::unordered_map<std::string, int32_t> merge_ranks_;  // "left right" -> place in the list
  bool ignore_merges_;
  bool add_prefix_space_;
};

}  // namespace cleave
