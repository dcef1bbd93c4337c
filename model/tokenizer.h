// The `llama` (SentencePiece-style) tokenizer read from GGUF metadata:
// vocabulary with scores, byte fallback <0xXX> tokens, BOS/EOS/UNK.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/gguf.h"

namespace cleave {

using TokenId = int32_t;

// Token kinds of tokenizer.ggml.token_type.
enum class TokenKind : int32_t {
  NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6,
};

struct Vocabulary {
  std::vector<std::string> tokens;    // SentencePiece pieces, U+2581 for space
  std::vector<float> scores;          // merge priority: higher merges first
  std::vector<TokenKind> kinds;
  TokenId bos = 1, eos = 2, unk = 0;
  bool add_bos = true;
  bool add_space_prefix = true;       // SentencePiece's " " before the text
};

class Tokenizer {
 public:
  explicit Tokenizer(Vocabulary vocab);
  // Reads tokenizer.ggml.* from a GGUF file. A `gpt2` (byte-level BPE) or any
  // other model than `llama` is refused with a message that names it.
  static Tokenizer from_gguf(const gguf::File& file);

  // Text to ids, as llama.cpp's llm_tokenizer_spm: space prefix, spaces as
  // U+2581, greedy merge of the best-scoring pair, byte fallback for pieces not
  // in the vocabulary. `add_bos` prepends BOS.
  std::vector<TokenId> encode(const std::string& text, bool add_bos) const;
  // Ids to text: U+2581 to space, <0xXX> to bytes, control tokens dropped, the
  // leading space of the first piece removed when it follows BOS.
  std::string decode(const std::vector<TokenId>& ids) const;
  // One piece as text (for streaming generation), with U+2581 as space.
  std::string piece(TokenId id) const;

  int32_t size() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  TokenId bos() const { return vocab_.bos; }
  TokenId eos() const { return vocab_.eos; }
  const Vocabulary& vocab() const { return vocab_; }

 private:
  Vocabulary vocab_;
  std::unordered_map<std::string, TokenId> piece_to_id_;
  TokenId byte_tokens_[256];
};

}  // namespace cleave
