// SentencePiece-style (`llama`) tokenizer: the merge procedure of llama.cpp's
// llm_tokenizer_spm, with byte fallback, and SentencePiece's decoding rules.
#include "model/tokenizer.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <queue>
#include <stdexcept>
#include <utility>

namespace cleave {
namespace {

// U+2581 LOWER ONE EIGHTH BLOCK: how SentencePiece writes a space inside pieces.
const std::string kSpaceSymbol = "\xe2\x96\x81";

// Bytes in the UTF-8 sequence that starts with `lead`. A stray continuation
// byte counts as a one-byte character, as in llama.cpp, so any input splits.
size_t utf8_sequence_length(unsigned char lead) {
  static const size_t lengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lengths[lead >> 4];
}

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  std::string result;
  result.reserve(text.size());
  size_t done = 0;
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, done)) {
    result.append(text, done, at - done);
    result.append(to);
    done = at + from.size();
  }
  result.append(text, done, std::string::npos);
  return result;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The byte a "<0xAB>" piece stands for, or nullopt for any other piece.
std::optional<uint8_t> byte_of_piece(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return std::nullopt;
  const int high = hex_digit(piece[3]);
  const int low = hex_digit(piece[4]);
  if (high < 0 || low < 0) return std::nullopt;
  return static_cast<uint8_t>(high * 16 + low);
}

const char* kind_name(TokenKind kind) {
  switch (kind) {
    case TokenKind::NORMAL: return "NORMAL";
    case TokenKind::UNKNOWN: return "UNKNOWN";
    case TokenKind::CONTROL: return "CONTROL";
    case TokenKind::USER_DEFINED: return "USER_DEFINED";
    case TokenKind::UNUSED: return "UNUSED";
    case TokenKind::BYTE: return "BYTE";
  }
  return "invalid";
}

bool is_known_kind(int32_t value) { return value >= 1 && value <= 6; }

// One run of the bottom-up merge over a single escaped text. Symbols are
// byte spans of the text kept in a linked list; `size == 0` marks a symbol
// that was absorbed by its left neighbour.
class MergeSession {
 public:
  MergeSession(const std::string& text, const std::unordered_map<std::string, TokenId>& piece_to_id,
               const std::vector<float>& scores)
      : text_(text), piece_to_id_(piece_to_id), scores_(scores) {}

  // Merges until no adjacent pair forms a vocabulary piece; returns the
  // surviving symbols' (start, size) in text order.
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
    float score;
    size_t size;
  };
  // Highest score first; among equal scores the leftmost pair.
  struct LowerPriority {
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
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
    const size_t size = symbols_[left].size + symbols_[right].size;
    const auto found = piece_to_id_.find(text_.substr(symbols_[left].start, size));
    if (found == piece_to_id_.end()) return;
    candidates_.push({left, right, scores_[found->second], size});
  }

  const std::string& text_;
  const std::unordered_map<std::string, TokenId>& piece_to_id_;
  const std::vector<float>& scores_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram, std::vector<Bigram>, LowerPriority> candidates_;
};

// Runs `read` on the value of `key`, prefixing any type error with the file and key.
template <typename Read>
auto read_key(const gguf::File& file, const std::string& key, Read read) {
  try {
    return read(file.get(key));
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    // File::get already names the file when the key is missing.
    if (message.rfind(file.path(), 0) == 0) throw;
    throw std::runtime_error(file.path() + ": metadata key " + key + ": " + message);
  }
}

TokenId read_token_id(const gguf::File& file, const std::string& key, TokenId fallback,
                      size_t vocab_size) {
  if (file.find(key) == nullptr) return fallback;
  const int64_t id = read_key(file, key, [](const gguf::Value& v) { return v.as_int(); });
  if (id < 0 || id >= static_cast<int64_t>(vocab_size)) {
    throw std::runtime_error(file.path() + ": " + key + " = " + std::to_string(id) +
                             " is outside the vocabulary of " + std::to_string(vocab_size) +
                             " tokens: the file's tokenizer metadata is inconsistent");
  }
  return static_cast<TokenId>(id);
}

bool read_flag(const gguf::File& file, const std::string& key, bool fallback) {
  if (file.find(key) == nullptr) return fallback;
  return read_key(file, key, [](const gguf::Value& v) { return v.as_bool(); });
}

void check_length(const gguf::File& file, const std::string& key, size_t length, size_t n_tokens) {
  if (length != n_tokens) {
    throw std::runtime_error(file.path() + ": " + key + " has " + std::to_string(length) +
                             " entries but tokenizer.ggml.tokens has " + std::to_string(n_tokens) +
                             ": the file's tokenizer metadata is inconsistent");
  }
}

}  // namespace

Tokenizer::Tokenizer(Vocabulary vocab) : vocab_(std::move(vocab)) {
  const size_t n = vocab_.tokens.size();
  if (n == 0) throw std::runtime_error("tokenizer vocabulary is empty: pass at least one token");
  if (n > static_cast<size_t>(INT32_MAX)) {
    throw std::runtime_error("tokenizer vocabulary has " + std::to_string(n) +
                             " tokens, more than 32-bit token ids can address");
  }
  if (vocab_.scores.size() != n || vocab_.kinds.size() != n) {
    throw std::runtime_error("tokenizer vocabulary has " + std::to_string(n) + " tokens but " +
                             std::to_string(vocab_.scores.size()) + " scores and " +
                             std::to_string(vocab_.kinds.size()) +
                             " kinds: give one score and one kind per token");
  }
  const std::pair<const char*, TokenId> specials[] = {
      {"BOS", vocab_.bos}, {"EOS", vocab_.eos}, {"UNK", vocab_.unk}};
  for (const auto& [name, id] : specials) {
    if (id < 0 || id >= static_cast<TokenId>(n)) {
      throw std::runtime_error(std::string(name) + " token id " + std::to_string(id) +
                               " is outside the vocabulary of " + std::to_string(n) + " tokens");
    }
  }

  for (TokenId& id : byte_tokens_) id = -1;
  piece_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const TokenId id = static_cast<TokenId>(i);
    const TokenKind kind = vocab_.kinds[i];
    if (!is_known_kind(static_cast<int32_t>(kind))) {
      throw std::runtime_error("token " + std::to_string(i) + " has kind " +
                               std::to_string(static_cast<int32_t>(kind)) +
                               ", not one of the token kinds 1..6");
    }
    const std::string& text = vocab_.tokens[i];
    // Like llama.cpp, a duplicated piece resolves to its last id.
    piece_to_id_[text] = id;
    const std::optional<uint8_t> byte = byte_of_piece(text);
    if (kind == TokenKind::BYTE && !byte) {
      throw std::runtime_error("token " + std::to_string(i) + " '" + text +
                               "' is a BYTE token but is not written <0xXX>");
    }
    if (byte && byte_tokens_[*byte] < 0) byte_tokens_[*byte] = id;
  }
}

std::vector<TokenId> Tokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<TokenId> ids;
  if (add_bos) ids.push_back(vocab_.bos);
  // SentencePiece encodes "" as nothing: no space prefix without text.
  if (text.empty()) return ids;

  const std::string escaped =
      replace_all(vocab_.add_space_prefix ? " " + text : text, " ", kSpaceSymbol);
  MergeSession session(escaped, piece_to_id_, vocab_.scores);
  for (const auto& [start, size] : session.run()) {
    const auto found = piece_to_id_.find(escaped.substr(start, size));
    if (found != piece_to_id_.end()) {
      ids.push_back(found->second);
      continue;
    }
    // Merged symbols are always vocabulary pieces, so what is left here is a
    // single character the vocabulary lacks: spell it byte by byte.
    for (size_t i = start; i < start + size; ++i) {
      const TokenId byte_token = byte_tokens_[static_cast<unsigned char>(escaped[i])];
      ids.push_back(byte_token >= 0 ? byte_token : vocab_.unk);
    }
  }
  return ids;
}

std::string Tokenizer::piece(TokenId id) const {
  if (id < 0 || id >= size()) {
    throw std::runtime_error("token id " + std::to_string(id) + " is outside the vocabulary of " +
                             std::to_string(size()) +
                             " tokens: were the ids made by another model's tokenizer?");
  }
  const std::string& text = vocab_.tokens[id];
  switch (vocab_.kinds[id]) {
    case TokenKind::NORMAL: return replace_all(text, kSpaceSymbol, " ");
    case TokenKind::USER_DEFINED: return text;
    case TokenKind::BYTE: return std::string(1, static_cast<char>(*byte_of_piece(text)));
    case TokenKind::UNKNOWN:
    case TokenKind::CONTROL:
    case TokenKind::UNUSED: return "";
  }
  throw std::runtime_error("token " + std::to_string(id) + " has invalid kind " +
                           kind_name(vocab_.kinds[id]));
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids) const {
  std::string text;
  bool first_text = true;
  for (const TokenId id : ids) {
    std::string part = piece(id);
    if (part.empty()) continue;
    // The space the encoder put in front of the text is not part of it.
    if (first_text && vocab_.add_space_prefix && vocab_.kinds[id] == TokenKind::NORMAL &&
        vocab_.tokens[id].compare(0, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
      part.erase(0, 1);
    }
    first_text = false;
    text += part;
  }
  return text;
}

Tokenizer Tokenizer::from_gguf(const gguf::File& file) {
  const std::string model = read_key(file, "tokenizer.ggml.model",
                                     [](const gguf::Value& v) { return v.as_string(); });
  if (model == "gpt2") {
    throw std::runtime_error(file.path() +
                             ": tokenizer model 'gpt2' (byte-level BPE) is not supported yet; "
                             "cleave supports 'llama' (SentencePiece) vocabularies");
  }
  if (model != "llama") {
    throw std::runtime_error(file.path() + ": tokenizer model '" + model +
                             "' is not supported; cleave supports 'llama' (SentencePiece) "
                             "vocabularies");
  }

  Vocabulary vocab;
  vocab.tokens = read_key(file, "tokenizer.ggml.tokens",
                          [](const gguf::Value& v) { return v.as_strings(); });
  const size_t n = vocab.tokens.size();
  if (n == 0) throw std::runtime_error(file.path() + ": tokenizer.ggml.tokens is empty");

  // Scores and types are optional in llama.cpp too: 0 and NORMAL by default.
  vocab.scores.assign(n, 0.0f);
  if (file.find("tokenizer.ggml.scores") != nullptr) {
    vocab.scores = read_key(file, "tokenizer.ggml.scores",
                            [](const gguf::Value& v) { return v.as_floats(); });
    check_length(file, "tokenizer.ggml.scores", vocab.scores.size(), n);
  }
  vocab.kinds.assign(n, TokenKind::NORMAL);
  if (file.find("tokenizer.ggml.token_type") != nullptr) {
    const std::vector<int32_t> types = read_key(
        file, "tokenizer.ggml.token_type", [](const gguf::Value& v) { return v.as_ints(); });
    check_length(file, "tokenizer.ggml.token_type", types.size(), n);
    for (size_t i = 0; i < n; ++i) {
      if (!is_known_kind(types[i])) {
        throw std::runtime_error(file.path() + ": tokenizer.ggml.token_type[" + std::to_string(i) +
                                 "] = " + std::to_string(types[i]) +
                                 " is not a known token type (1..6)");
      }
      vocab.kinds[i] = static_cast<TokenKind>(types[i]);
    }
  }

  vocab.bos = read_token_id(file, "tokenizer.ggml.bos_token_id", vocab.bos, n);
  vocab.eos = read_token_id(file, "tokenizer.ggml.eos_token_id", vocab.eos, n);
  vocab.unk = read_token_id(file, "tokenizer.ggml.unknown_token_id", vocab.unk, n);
  vocab.add_bos = read_flag(file, "tokenizer.ggml.add_bos_token", true);
  vocab.add_space_prefix = read_flag(file, "tokenizer.ggml.add_space_prefix", true);

  try {
    return Tokenizer(std::move(vocab));
  } catch (const std::runtime_error& error) {
    throw std::runtime_error(file.path() + ": " + error.what());
  }
}

}  // namespace cleave
