// Text to token ids and back, for the two kinds of vocabulary Llama-family
// models carry: SentencePiece-style (`llama` in GGUF) with scores and byte
// fallback, and byte-level BPE (`gpt2` in GGUF: GPT-2, Llama 3, Qwen2,
// DeepSeek, StarCoder...) with merges and a regex pre-tokenizer, also read
// from a Hugging Face tokenizer.json. One interface for both.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/gguf.h"

namespace cleave {

using TokenId = int32_t;

// Token kinds of tokenizer.ggml.token_type.
enum class TokenKind : int32_t {
  NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6,
};

struct Vocabulary {
  std::vector<std::string> tokens;    // SentencePiece pieces, U+2581 for space;
                                      // byte-level BPE: bytes as GPT-2's characters
  std::vector<float> scores;          // SentencePiece merge priority: higher merges first
  std::vector<TokenKind> kinds;
  TokenId bos = 1, eos = 2, unk = 0;
  bool add_bos = true;                // the model expects BOS (informational: see encode)
  bool add_space_prefix = true;       // SentencePiece's " " before the text
  // The model's chat template (Jinja source) as given: tokenizer.chat_template
  // in GGUF, chat_template in tokenizer_config.json; "" when it has none.
  std::string chat_template;
};

// A part of a text put together from pieces of different origin, such as a
// chat template's markers (special tokens parsed) around user text (not).
struct TextPart {
  std::string text;
  bool parse_special = false;
};

// What a byte-level BPE vocabulary has besides its tokens.
struct BpeRules {
  // Pairs of adjacent symbols that merge, in priority order (first merges first),
  // written as tokens are (a space as U+0120, and so on).
  std::vector<std::pair<std::string, std::string>> merges;
  // PCRE2 patterns applied in turn to cut the text into pre-tokens; each keeps
  // its matches and the text between them as pieces (see model/regex_split.h).
  std::vector<std::string> split_patterns;
  // A pre-token that is itself a token becomes that token without merging (Llama 3).
  bool ignore_merges = false;
  // Hugging Face's ByteLevel add_prefix_space: " " before text that does not start with one.
  bool add_prefix_space = false;
};

class ByteLevelBpe;

class Tokenizer {
 public:
  // A SentencePiece-style tokenizer.
  explicit Tokenizer(Vocabulary vocab);
  // A byte-level BPE tokenizer (`scores` and `add_space_prefix` are unused).
  // Throws std::runtime_error for an inconsistent vocabulary or a pattern PCRE2
  // rejects.
  Tokenizer(Vocabulary vocab, const BpeRules& rules);
  // Reads tokenizer.ggml.* from a GGUF file: model `llama` (SentencePiece) or
  // `gpt2` (byte-level BPE, with the pre-tokenizer tokenizer.ggml.pre names,
  // as llama.cpp chooses it). Anything else is refused with a message naming
  // the file and the model or pre-tokenizer.
  static Tokenizer from_gguf(const gguf::File& file);
  // Reads a Hugging Face tokenizer.json of model type BPE with a ByteLevel
  // pre-tokenizer, and BOS, EOS and the chat template from the
  // tokenizer_config.json beside it ("X.tokenizer.json" pairs with
  // "X.tokenizer_config.json"). Errors name the file and the field. Defined
  // in model/tokenizer_json.cpp.
  static Tokenizer from_tokenizer_json(const std::string& path);

  // Text to ids; `add_bos` prepends BOS (whatever vocab().add_bos says).
  // SentencePiece, as llama.cpp's llm_tokenizer_spm: space prefix, spaces as
  // U+2581, greedy merge of the best-scoring pair, byte fallback for pieces
  // not in the vocabulary. Byte-level BPE, as llama.cpp's llm_tokenizer_bpe:
  // user-defined tokens written in the text are cut out first and never
  // merged; the rest is cut by the pre-tokenizer and each piece merged on its
  // own. `parse_special` (llama.cpp's flag of that name): control and unknown
  // tokens written in the text (<|eot_id|>) are cut out as tokens too, and
  // for SentencePiece user-defined ones, which it otherwise reads as text.
  std::vector<TokenId> encode(const std::string& text, bool add_bos,
                              bool parse_special = false) const;
  // The parts' concatenation encoded as above, except that special tokens are
  // cut out only of the parts that ask for it (user-defined ones of every
  // byte-level part, as above): text on both sides of a boundary between
  // parts is tokenized as one text, and SentencePiece's space prefix goes only
  // before the first text and after a special token.
  std::vector<TokenId> encode(const std::vector<TextPart>& parts, bool add_bos) const;
  // Ids to text, control tokens dropped. SentencePiece: U+2581 to space, <0xXX>
  // to bytes, the leading space of the first piece removed when it follows
  // BOS. Byte-level BPE: GPT-2's characters back to bytes, user-defined tokens
  // as written, so decode(encode(text)) == text for any bytes (when the
  // vocabulary has all 256 byte characters and no special token is parsed).
  std::string decode(const std::vector<TokenId>& ids) const;
  // One piece as text (for streaming generation), with U+2581 as space. A
  // byte-level piece may be part of a UTF-8 character.
  std::string piece(TokenId id) const;

  int32_t size() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  TokenId bos() const { return vocab_.bos; }
  TokenId eos() const { return vocab_.eos; }
  const Vocabulary& vocab() const { return vocab_; }
  bool byte_level() const { return bpe_ != nullptr; }

 private:
  struct Fragment {
    TokenId special;   // a special token's id, or -1 for text
    size_t start;      // the text's bytes [start, start + size)
    size_t size;
  };
  void check_and_index();
  std::vector<Fragment> split_special_tokens(const std::string& text, bool parse_special) const;
  // The parts' concatenation as text and special tokens, adjacent texts joined.
  std::vector<Fragment> split_parts(const std::vector<TextPart>& parts, std::string& joined) const;
  void append_spm(const std::string& text, bool space_prefix, std::vector<TokenId>& ids) const;

  Vocabulary vocab_;
  std::unordered_map<std::string, TokenId> piece_to_id_;
  TokenId byte_tokens_[256];
  // Control, user-defined and unknown tokens, the longest text first.
  std::vector<TokenId> special_tokens_;
  std::shared_ptr<const ByteLevelBpe> bpe_;  // set for byte-level BPE
};

}  // namespace cleave
