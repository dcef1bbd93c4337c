// Byte-level BPE: llama.cpp's pre-tokenizer choices, GPT-2's byte mapping
// and the merge by rank (llama.cpp's llm_tokenizer_bpe_session).
#include "model/bpe.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <stdexcept>
#include <utility>

#include "model/symbol_merge.h"
#include "model/utf8.h"

namespace cleave {

const char* const kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// The regexes of llama.cpp's llm_tokenizer_bpe, by pre-tokenizer type. Where
// llama.cpp rewrote a tokenizer.json regex for std::regex ((?i:'s|...) spelled
// out as '[sS]...), its rewrite is used, as it gives the same pieces.
// GPT-2's own regex without the final |\s+: the lone whitespace character that
// alternative would match is left between two matches, a piece all the same.
const char* const kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
const char* const kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// CJK ideographs, U+0800..U+4E00 and Hangul, as DeepSeek's tokenizers group them.
// Non-ASCII characters in these patterns are written as code points: some in
// DeepSeek's letter class (U+212A KELVIN SIGN, U+1F7D...) are ones Unicode
// normalization rewrites, which would silently change the ranges.
const char* const kDeepSeekCjk = R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";

struct NamedPreTokenizer {
  std::vector<std::string> names;
  PreTokenizer pre;
};

const std::vector<NamedPreTokenizer>& pre_tokenizers() {
  static const std::vector<NamedPreTokenizer> table = {
      // llama.cpp's default, also for a GGUF without tokenizer.ggml.pre.
      {{"default"}, {{R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}, false, false}},
      // "gpt-neox" is no llama.cpp name: GPT-NeoX's tokenizer.json uses GPT-2's regex.
      {{"gpt-2", "phi-2", "mpt", "olmo", "gpt-neox"}, {{kGpt2}, false, false}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3"}, {{kLlama3}, true, true}},
      {{"dbrx", "smaug-bpe"}, {{kLlama3}, false, false}},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"}, {{kQwen2}, false, false}},
      {{"deepseek-llm"},
       {{"[\r\n]",
         R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF})"
         R"(\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F})"
         R"(\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481})"
         R"(\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD})"
         R"(\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77})"
         R"(\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45})"
         R"(\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D})"
         R"(\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})"
         R"(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4})"
         R"(\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124})"
         R"(\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F})"
         R"(\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
         R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F})"
         R"(\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06})"
         R"(\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F})"
         R"(\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
         R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)",
         R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)", R"(\s+$)",
         kDeepSeekCjk, R"(\p{N}+)"},
        false,
        false}},
      {{"deepseek-coder"},
       {{"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepSeekCjk, R"(\p{N})"}, false, false}},
      {{"falcon"}, {{R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"}, false, false}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
       {{R"(\p{N})", kGpt2}, false, false}},
  };
  return table;
}

// GPT-2's bytes_to_unicode: the printable bytes ! to ~, ¡ to ¬ and ® to ÿ
// stand for themselves; the other 68 bytes, in order, for U+0100 onwards.
constexpr uint32_t kFirstMovedCodePoint = 0x100;
constexpr size_t kMovedBytes = 68;

bool stands_for_itself(unsigned byte) {
  return (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE);
}

std::string utf8_of(uint32_t code_point) {
  std::string out;
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else {  // the mapping stays below U+0800
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
  return out;
}

struct ByteLevelTable {
  std::array<std::string, 256> character;          // byte -> its character's UTF-8
  std::array<int, kFirstMovedCodePoint + kMovedBytes> byte;  // code point -> byte, or -1

  ByteLevelTable() {
    byte.fill(-1);
    uint32_t next_moved = kFirstMovedCodePoint;
    for (unsigned b = 0; b < 256; ++b) {
      const uint32_t code_point = stands_for_itself(b) ? b : next_moved++;
      character[b] = utf8_of(code_point);
      byte[code_point] = static_cast<int>(b);
    }
  }
};

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table;
  return table;
}

// The code point of the UTF-8 character at text[at..at+length), or -1 if malformed.
int64_t decode_code_point(std::string_view text, size_t at, size_t length) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[at + i]); };
  if (length == 1) return byte(0) < 0x80 ? byte(0) : -1;
  uint32_t code_point = byte(0) & (0xFF >> (length + 1));
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return -1;
    code_point = (code_point << 6) | (byte(i) & 0x3F);
  }
  return code_point;
}

}  // namespace

std::optional<PreTokenizer> find_pre_tokenizer(const std::string& name) {
  for (const NamedPreTokenizer& entry : pre_tokenizers()) {
    for (const std::string& known : entry.names) {
      if (known == name) return entry.pre;
    }
  }
  return std::nullopt;
}

std::string known_pre_tokenizers() {
  std::string list;
  for (const NamedPreTokenizer& entry : pre_tokenizers()) {
    for (const std::string& name : entry.names) list += (list.empty() ? "" : ", ") + name;
  }
  return list;
}

std::optional<std::pair<std::string, std::string>> split_merge(const std::string& written) {
  const size_t space = written.find(' ', 1);
  if (space == std::string::npos) return std::nullopt;
  return std::make_pair(written.substr(0, space), written.substr(space + 1));
}

std::string byte_level_encode(std::string_view bytes) {
  const ByteLevelTable& table = byte_level_table();
  std::string text;
  text.reserve(bytes.size() * 2);
  for (const char c : bytes) text += table.character[static_cast<unsigned char>(c)];
  return text;
}

std::string byte_level_decode(std::string_view text) {
  const ByteLevelTable& table = byte_level_table();
  std::string bytes;
  bytes.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    const size_t length =
        std::min(utf8_sequence_length(static_cast<unsigned char>(text[at])), text.size() - at);
    const int64_t code_point = decode_code_point(text, at, length);
    if (code_point >= 0 && code_point < static_cast<int64_t>(table.byte.size()) &&
        table.byte[code_point] >= 0) {
      bytes += static_cast<char>(table.byte[code_point]);
    } else {
      bytes.append(text, at, length);
    }
    at += length;
  }
  return bytes;
}

ByteLevelBpe::ByteLevelBpe(const BpeRules& rules)
    : splitter_([&rules] {
        try {
          return std::make_unique<RegexSplitter>(rules.split_patterns);
        } catch (const std::invalid_argument& error) {
          throw std::runtime_error(std::string("pre-tokenizer: ") + error.what());
        }
      }()),
      ignore_merges_(rules.ignore_merges),
      add_prefix_space_(rules.add_prefix_space) {
  merge_ranks_.reserve(rules.merges.size());
  for (size_t rank = 0; rank < rules.merges.size(); ++rank) {
    const auto& [left, right] = rules.merges[rank];
    // A repeated pair keeps its first (best) rank, as in llama.cpp.
    merge_ranks_.emplace(left + " " + right, static_cast<int32_t>(rank));
  }
}

std::optional<double> ByteLevelBpe::merge_priority(std::string_view left,
                                                   std::string_view right) const {
  std::string key;
  key.reserve(left.size() + 1 + right.size());
  key.append(left).append(1, ' ').append(right);
  const auto found = merge_ranks_.find(key);
  if (found == merge_ranks_.end()) return std::nullopt;
  return -static_cast<double>(found->second);  // the earlier in the list, the higher
}

void ByteLevelBpe::encode(const std::string& text,
                          const std::unordered_map<std::string, TokenId>& token_ids,
                          std::vector<TokenId>& ids) const {
  if (text.empty()) return;
  const std::string input = add_prefix_space_ && text[0] != ' ' ? " " + text : text;
  const auto priority = [this](std::string_view left, std::string_view right) {
    return merge_priority(left, right);
  };
  for (const TextSpan& span : splitter_->split(input)) {
    const std::string word = byte_level_encode(std::string_view(input).substr(span.start, span.size));
    if (ignore_merges_) {
      const auto whole = token_ids.find(word);
      if (whole != token_ids.end()) {
        ids.push_back(whole->second);
        continue;
      }
    }
    for (const auto& [start, size] : merge_symbols(word, priority)) {
      const auto found = token_ids.find(word.substr(start, size));
      if (found != token_ids.end()) {
        ids.push_back(found->second);
        continue;
      }
      for (size_t at = start; at < start + size;) {
        const size_t length = utf8_sequence_length(static_cast<unsigned char>(word[at]));
        const auto character = token_ids.find(word.substr(at, length));
        if (character != token_ids.end()) ids.push_back(character->second);
        at += length;
      }
    }
  }
}

}  // namespace cleave
