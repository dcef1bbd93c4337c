// The Tokenizer interface over both vocabularies: the SentencePiece-style
// (`llama`) tokenizer itself (llama.cpp's llm_tokenizer_spm, byte fallback,
// SentencePiece's decoding rules), special tokens cut out of the text before
// either tokenizer runs (llama.cpp's tokenizer_st_partition), and reading
// both kinds from GGUF. Byte-level BPE proper is in model/bpe.cpp.
#include "model/tokenizer.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "model/bpe.h"
#include "model/symbol_merge.h"

namespace cleave {
namespace {

// U+2581 LOWER ONE EIGHTH BLOCK: how SentencePiece writes a space inside pieces.
const std::string kSpaceSymbol = "\xe2\x96\x81";

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

// The keys both vocabularies share: tokens, and optionally scores, types and
// the chat template.
Vocabulary read_tokens(const gguf::File& file) {
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
  const std::string template_key = "tokenizer.chat_template";
  if (file.find(template_key) != nullptr) {
    vocab.chat_template =
        read_key(file, template_key, [](const gguf::Value& v) { return v.as_string(); });
  }
  return vocab;
}

// tokenizer.ggml.merges, each "left right".
std::vector<std::pair<std::string, std::string>> read_merges(const gguf::File& file) {
  const std::string key = "tokenizer.ggml.merges";
  if (file.find(key) == nullptr) {
    throw std::runtime_error(file.path() + ": " + key +
                             " is missing: a gpt2 (byte-level BPE) vocabulary needs its merges");
  }
  const std::vector<std::string> written =
      read_key(file, key, [](const gguf::Value& v) { return v.as_strings(); });
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(written.size());
  for (size_t i = 0; i < written.size(); ++i) {
    auto merge = split_merge(written[i]);
    if (!merge) {
      throw std::runtime_error(file.path() + ": " + key + "[" + std::to_string(i) + "] = '" +
                               written[i] + "' is not two tokens separated by a space");
    }
    merges.push_back(std::move(*merge));
  }
  return merges;
}

Tokenizer construct_for(const gguf::File& file, Vocabulary vocab, const BpeRules* rules) {
  try {
    return rules ? Tokenizer(std::move(vocab), *rules) : Tokenizer(std::move(vocab));
  } catch (const std::runtime_error& error) {
    throw std::runtime_error(file.path() + ": " + error.what());
  }
}

}  // namespace

Tokenizer::Tokenizer(Vocabulary vocab) : vocab_(std::move(vocab)) { check_and_index(); }

Tokenizer::Tokenizer(Vocabulary vocab, const BpeRules& rules) : vocab_(std::move(vocab)) {
  check_and_index();
  bpe_ = std::make_shared<const ByteLevelBpe>(rules);
}

void Tokenizer::check_and_index() {
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
    const bool special = kind == TokenKind::CONTROL || kind == TokenKind::USER_DEFINED ||
                         kind == TokenKind::UNKNOWN;
    if (special && !text.empty()) special_tokens_.push_back(id);
  }
  // Longest first, so "<|eot_id|>" is not read as a shorter token it contains.
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(), [this](TokenId a, TokenId b) {
    return vocab_.tokens[a].size() > vocab_.tokens[b].size();
  });
}

std::vector<Tokenizer::Fragment> Tokenizer::split_special_tokens(const std::string& text,
                                                                  bool parse_special) const {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({-1, 0, text.size()});
  const std::string_view whole(text);
  for (const TokenId special : special_tokens_) {
    // Without parse_special only user-defined tokens are cut out, as in
    // llama.cpp (and Hugging Face, for its added tokens that are not special).
    if (!parse_special && vocab_.kinds[special] != TokenKind::USER_DEFINED) continue;
    const std::string& written = vocab_.tokens[special];
    std::vector<Fragment> cut;
    cut.reserve(fragments.size());
    for (const Fragment& fragment : fragments) {
      if (fragment.special >= 0) {
        cut.push_back(fragment);
        continue;
      }
      const size_t end = fragment.start + fragment.size;
      size_t from = fragment.start;
      for (size_t at = whole.substr(0, end).find(written, from); at != std::string_view::npos;
           at = whole.substr(0, end).find(written, from)) {
        if (at > from) cut.push_back({-1, from, at - from});
        cut.push_back({special, at, written.size()});
        from = at + written.size();
      }
      if (end > from) cut.push_back({-1, from, end - from});
    }
    fragments = std::move(cut);
  }
  return fragments;
}

void Tokenizer::append_spm(const std::string& text, bool space_prefix,
                           std::vector<TokenId>& ids) const {
  // SentencePiece encodes "" as nothing: no space prefix without text.
  if (text.empty()) return;

  const std::string escaped = replace_all(space_prefix ? " " + text : text, " ", kSpaceSymbol);
  const auto score = [this](std::string_view left, std::string_view right) -> std::optional<double> {
    // Adjacent symbols: the merged piece is the text from left's start.
    const auto found = piece_to_id_.find(std::string(left.data(), left.size() + right.size()));
    if (found == piece_to_id_.end()) return std::nullopt;
    return vocab_.scores[found->second];
  };
  for (const auto& [start, size] : merge_symbols(escaped, score)) {
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
}

std::vector<Tokenizer::Fragment> Tokenizer::split_parts(const std::vector<TextPart>& parts,
                                                         std::string& joined) const {
  std::vector<Fragment> fragments;
  for (const TextPart& part : parts) {
    const size_t offset = joined.size();
    joined += part.text;
    // The SentencePiece tokenizer reads user-defined tokens as text too,
    // unless special tokens are parsed.
    const std::vector<Fragment> cut =
        bpe_ || part.parse_special ? split_special_tokens(part.text, part.parse_special)
                                   : std::vector<Fragment>{{-1, 0, part.text.size()}};
    for (const Fragment& fragment : cut) {
      if (fragment.size == 0) continue;
      if (fragment.special < 0 && !fragments.empty() && fragments.back().special < 0) {
        fragments.back().size += fragment.size;  // text continued across the parts
        continue;
      }
      fragments.push_back({fragment.special, offset + fragment.start, fragment.size});
    }
  }
  return fragments;
}

std::vector<TokenId> Tokenizer::encode(const std::string& text, bool add_bos,
                                       bool parse_special) const {
  return encode(std::vector<TextPart>{{text, parse_special}}, add_bos);
}

std::vector<TokenId> Tokenizer::encode(const std::vector<TextPart>& parts, bool add_bos) const {
  std::vector<TokenId> ids;
  if (add_bos) ids.push_back(vocab_.bos);
  std::string text;
  // SentencePiece's space prefix goes before the first text and after each
  // special token (llama.cpp's is_prev_special).
  bool after_special = true;
  for (const Fragment& fragment : split_parts(parts, text)) {
    if (fragment.special >= 0) {
      ids.push_back(fragment.special);
      after_special = true;
      continue;
    }
    const std::string part = text.substr(fragment.start, fragment.size);
    if (bpe_) {
      bpe_->encode(part, piece_to_id_, ids);
    } else {
      append_spm(part, vocab_.add_space_prefix && after_special, ids);
    }
    after_special = false;
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
    case TokenKind::NORMAL:
      return bpe_ ? byte_level_decode(text) : replace_all(text, kSpaceSymbol, " ");
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
    // The space the SentencePiece encoder put in front of the text is not part of it.
    if (first_text && !bpe_ && vocab_.add_space_prefix && vocab_.kinds[id] == TokenKind::NORMAL &&
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
  if (model != "llama" && model != "gpt2") {
    throw std::runtime_error(file.path() + ": tokenizer model '" + model +
                             "' is not supported; cleave supports 'llama' (SentencePiece) and "
                             "'gpt2' (byte-level BPE) vocabularies");
  }

  Vocabulary vocab = read_tokens(file);
  const size_t n = vocab.tokens.size();
  if (model == "llama") {
    vocab.bos = read_token_id(file, "tokenizer.ggml.bos_token_id", vocab.bos, n);
    vocab.eos = read_token_id(file, "tokenizer.ggml.eos_token_id", vocab.eos, n);
    vocab.unk = read_token_id(file, "tokenizer.ggml.unknown_token_id", vocab.unk, n);
    vocab.add_bos = read_flag(file, "tokenizer.ggml.add_bos_token", true);
    vocab.add_space_prefix = read_flag(file, "tokenizer.ggml.add_space_prefix", true);
    return construct_for(file, std::move(vocab), nullptr);
  }

  // As llama.cpp: no tokenizer.ggml.pre means its `default` pre-tokenizer.
  const std::string pre_key = "tokenizer.ggml.pre";
  const std::string pre_name =
      file.find(pre_key) == nullptr
          ? "default"
          : read_key(file, pre_key, [](const gguf::Value& v) { return v.as_string(); });
  const std::optional<PreTokenizer> pre = find_pre_tokenizer(pre_name);
  if (!pre) {
    throw std::runtime_error(file.path() + ": " + pre_key + " = '" + pre_name +
                             "' is a pre-tokenizer cleave does not know; it knows " +
                             known_pre_tokenizers());
  }
  // GPT-2-style vocabularies often use one token for both; llama.cpp's
  // defaults (id 11) mean nothing, so at least one must be given.
  const std::string bos_key = "tokenizer.ggml.bos_token_id";
  const std::string eos_key = "tokenizer.ggml.eos_token_id";
  if (file.find(bos_key) == nullptr && file.find(eos_key) == nullptr) {
    throw std::runtime_error(file.path() + ": neither " + bos_key + " nor " + eos_key +
                             " is set; a gpt2 (byte-level BPE) vocabulary has no default BOS or EOS");
  }
  vocab.bos = read_token_id(file, bos_key, -1, n);
  vocab.eos = read_token_id(file, eos_key, -1, n);
  if (vocab.bos < 0) vocab.bos = vocab.eos;
  if (vocab.eos < 0) vocab.eos = vocab.bos;
  vocab.unk = read_token_id(file, "tokenizer.ggml.unknown_token_id", 0, n);
  vocab.add_bos = read_flag(file, "tokenizer.ggml.add_bos_token", pre->add_bos);
  vocab.add_space_prefix = false;

  BpeRules rules;
  rules.merges = read_merges(file);
  rules.split_patterns = pre->split_patterns;
  rules.ignore_merges = pre->ignore_merges;
  return construct_for(file, std::move(vocab), &rules);
}

}  // namespace cleave
