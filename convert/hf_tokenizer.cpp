#include "convert/hf_tokenizer.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/bpe.h"
#include "model/json_file.h"
#include "model/model_writer.h"
#include "model/tokenizer.h"
#include "util/json.h"

namespace cleave::convert {
namespace {

// Text that tells llama.cpp's pre-tokenizers apart: contractions in both
// cases, runs of digits, whitespace of every kind, punctuation runs,
// letters of several scripts, emoji, and special-token look-alikes.
const char* const kProbeText =
    "Hello world! It's 3 o'clock; isn't it? I'VE SEEN 1, 12, 123, 1234, 12345 and 3.14159.\n"
    "\n\n   \t\tindented\r\n  trailing   \n"
    "$100+200=300 <tag> a|b ^x~y `code` ``` (brackets) [1] {k: v} -- ... !!! ???\n"
    "caf\xc3\xa9 na\xc3\xafve \xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c "
    "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 "
    "\xf0\x9f\xa6\x99\xf0\x9f\x9a\x80 \xe1\x80\x80 'll 've 're 'd 'm 's 't\n";

// llama.cpp pre-tokenizer names, one per distinct behaviour, the usual name first.
const char* const kPreTokenizerNames[] = {"llama-bpe",    "dbrx",           "qwen2",  "smollm", "gpt-2",
                                          "deepseek-llm", "deepseek-coder", "falcon", "default"};

// tokenizer_config.json beside tokenizer.json; nullopt when there is none.
std::optional<JsonFile> read_tokenizer_config(const std::string& tokenizer_json) {
  const std::string path = tokenizer_config_path(tokenizer_json);
  if (!std::filesystem::is_regular_file(path)) return std::nullopt;
  return JsonFile::read(path);
}

// A vocabulary the model cannot embed in full is refused.
void check_fits(const std::string& path, const Vocabulary& vocab, int64_t vocab_size) {
  if (static_cast<int64_t>(vocab.tokens.size()) > vocab_size) {
    throw std::runtime_error(path + ": has " + std::to_string(vocab.tokens.size()) +
                             " tokens, more than config.json's vocab_size " + std::to_string(vocab_size));
  }
}

// Byte-level BPE: the vocabulary Tokenizer::from_tokenizer_json reads, and
// the llama.cpp pre-tokenizer whose GGUF tokenizes the probe text as it does.
void add_byte_level(gguf::Writer& writer, const JsonFile& file, const json::Value& model,
                    int64_t vocab_size) {
  const Tokenizer reference = Tokenizer::from_tokenizer_json(file.path);
  check_fits(file.path, reference.vocab(), vocab_size);
  ByteLevelMetadata byte_level;
  for (const auto& [left, right] : read_bpe_merges(file, model)) byte_level.merges.push_back(left + " " + right);
  const bool ignore_merges = file.bool_at(model.find("ignore_merges"), "model.ignore_merges", false);
  const std::vector<TokenId> expected = reference.encode(kProbeText, false, true);
  std::string tried;
  for (const char* name : kPreTokenizerNames) {
    const std::optional<PreTokenizer> pre = find_pre_tokenizer(name);
    if (!pre || pre->ignore_merges != ignore_merges) continue;
    tried += std::string(tried.empty() ? "" : ", ") + name;
    byte_level.pre = name;
    gguf::Writer candidate;
    set_tokenizer_metadata(candidate, reference.vocab(), &byte_level);
    const auto image = gguf::File::from_bytes(file.path + " as " + name, candidate.to_bytes());
    if (Tokenizer::from_gguf(*image).encode(kProbeText, false, true) == expected) {
      set_tokenizer_metadata(writer, reference.vocab(), &byte_level);
      return;
    }
  }
  file.fail("pre_tokenizer", "cuts text unlike every llama.cpp pre-tokenizer cleave knows (tried " + tried +
                                 "); convert with --vocab FROM.gguf, a GGUF of this model made by llama.cpp");
}

// Whether a SentencePiece-style tokenizer.json puts "▁" before the text
// (a Prepend normalizer, or a Metaspace pre-tokenizer that prepends), after
// refusing the steps cleave's SentencePiece tokenizer would not reproduce.
bool sentencepiece_space_prefix(const JsonFile& file) {
  const std::string kSpace = "\xe2\x96\x81";  // U+2581
  bool prefix = false;
  if (const json::Value* normalizer = file.root.find("normalizer"); normalizer && !normalizer->is_null()) {
    std::vector<const json::Value*> steps;
    const std::string type =
        file.string_at(file.required(*normalizer, "type", "normalizer.type"), "normalizer.type");
    if (type == "Sequence") {
      for (const json::Value& step :
           file.required(*normalizer, "normalizers", "normalizer.normalizers").as_array()) {
        steps.push_back(&step);
      }
    } else {
      steps.push_back(normalizer);
    }
    for (const json::Value* step : steps) {
      const std::string kind = file.string_at(file.required(*step, "type", "normalizer.type"), "normalizer.type");
      if (kind == "Prepend" &&
          file.string_at(file.required(*step, "prepend", "normalizer.prepend"), "normalizer.prepend") == kSpace) {
        prefix = true;
      } else if (kind == "Replace") {
        const json::Value& pattern = file.required(*step, "pattern", "normalizer.pattern");
        const json::Value* literal = pattern.find("String");
        const json::Value* content = step->find("content");
        if (!literal || !literal->is_string() || literal->as_string() != " " || !content ||
            !content->is_string() || content->as_string() != kSpace) {
          file.fail("normalizer",
                    "has a Replace step other than ' ' -> U+2581, which cleave would not apply");
        }
      } else {
        file.fail("normalizer",
                  "has a " + kind + " step, which cleave's SentencePiece tokenizer would not apply");
      }
    }
  }
  if (const json::Value* pre = file.root.find("pre_tokenizer"); pre && !pre->is_null()) {
    const std::string type =
        file.string_at(file.required(*pre, "type", "pre_tokenizer.type"), "pre_tokenizer.type");
    if (type != "Metaspace") {
      file.fail("pre_tokenizer.type",
                "is '" + type + "'; a SentencePiece-style tokenizer has none or Metaspace");
    }
    const json::Value* scheme = pre->find("prepend_scheme");
    prefix = scheme && scheme->is_string()
                 ? scheme->as_string() != "never"
                 : file.bool_at(pre->find("add_prefix_space"), "pre_tokenizer.add_prefix_space", true);
  }
  return prefix;
}

// SentencePiece-style BPE with byte fallback (Llama 2): GGUF `llama`, each
// token scored minus the rank of the first merge that makes it, so that
// merging the best-scored pair first is merging in the merge list's order.
void add_sentencepiece(gguf::Writer& writer, const JsonFile& file, const json::Value& model,
                       const std::optional<JsonFile>& config, int64_t vocab_size) {
  std::vector<std::optional<std::string>> texts;
  std::vector<TokenKind> kinds;
  std::map<std::string, TokenId> ids;
  const auto place = [&](const json::Value& id, const std::string& text, TokenKind kind,
                         const std::string& field) {
    if (!id.is_integer() || id.as_int() < 0 || id.as_int() >= INT32_MAX)
      file.fail(field, "is not a token id");
    const auto at = static_cast<size_t>(id.as_int());
    if (at >= texts.size()) {
      texts.resize(at + 1);
      kinds.resize(at + 1, TokenKind::NORMAL);
    }
    if (texts[at] && *texts[at] != text)
      file.fail(field, "gives id " + std::to_string(at) + " to a second token");
    texts[at] = text;
    kinds[at] = kind;
    ids[text] = static_cast<TokenId>(at);
  };
  const json::Value& vocab_json = file.required(model, "vocab", "model.vocab");
  if (!vocab_json.is_object()) file.fail("model.vocab", "is not an object of token to id");
  static const std::regex kByteToken("<0x[0-9A-Fa-f]{2}>");
  for (const auto& [text, id] : vocab_json.as_object()) {
    place(id, text, std::regex_match(text, kByteToken) ? TokenKind::BYTE : TokenKind::NORMAL,
          "model.vocab[\"" + text + "\"]");
  }
  if (const json::Value* added = file.root.find("added_tokens"); added && added->is_array()) {
    for (size_t i = 0; i < added->size(); ++i) {
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      const json::Value& entry = (*added)[i];
      const std::string& content =
          file.string_at(file.required(entry, "content", field + ".content"), field + ".content");
      const bool special = file.bool_at(entry.find("special"), field + ".special", false);
      place(file.required(entry, "id", field + ".id"), content,
            special ? TokenKind::CONTROL : TokenKind::USER_DEFINED, field + ".id");
    }
  }
  Vocabulary vocab;
  for (size_t id = 0; id < texts.size(); ++id) {
    if (!texts[id])
      file.fail("model.vocab", "has no token with id " + std::to_string(id) + " (nor has added_tokens)");
    vocab.tokens.push_back(*texts[id]);
  }
  if (vocab.tokens.empty()) file.fail("model.vocab", "is empty");
  check_fits(file.path, vocab, vocab_size);
  vocab.kinds = std::move(kinds);

  const std::vector<std::pair<std::string, std::string>> merges = read_bpe_merges(file, model);
  vocab.scores.assign(vocab.tokens.size(), -static_cast<float>(merges.size()));  // made by no merge: last
  std::vector<bool> scored(vocab.tokens.size(), false);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto made = ids.find(merges[rank].first + merges[rank].second);
    if (made == ids.end() || scored[made->second]) continue;
    vocab.scores[made->second] = -static_cast<float>(rank);
    scored[made->second] = true;
  }

  const auto id_of = [&](const std::string& key, const std::string& fallback) -> std::optional<TokenId> {
    const std::optional<std::string> text = config ? config_token(*config, key) : std::nullopt;
    const auto found = ids.find(text.value_or(fallback));
    if (found != ids.end()) return found->second;
    if (text) config->fail(key, "'" + *text + "' is not a token of " + file.path);
    return std::nullopt;
  };
  const json::Value* unk_json = model.find("unk_token");
  const std::string unk_text = unk_json && unk_json->is_string() ? unk_json->as_string() : "<unk>";
  vocab.unk = id_of("unk_token", unk_text).value_or(0);
  vocab.kinds[vocab.unk] = TokenKind::UNKNOWN;
  const std::optional<TokenId> bos = id_of("bos_token", "<s>");
  const std::optional<TokenId> eos = id_of("eos_token", "</s>");
  if (!bos || !eos) {
    file.fail("added_tokens",
              "has no <s> or </s>, and no tokenizer_config.json names bos_token and eos_token");
  }
  vocab.bos = *bos;
  vocab.eos = *eos;
  vocab.add_bos = config ? config->bool_at(config->root.find("add_bos_token"), "add_bos_token", true) : true;
  vocab.add_space_prefix = sentencepiece_space_prefix(file);
  try {
    Tokenizer check(vocab);  // refuses an inconsistent vocabulary
  } catch (const std::exception& e) {
    throw std::runtime_error(file.path + ": " + e.what());
  }
  set_tokenizer_metadata(writer, vocab);
}

}  // namespace

void copy_tokenizer_metadata(gguf::Writer& writer, const gguf::File& from, int64_t vocab_size) {
  const gguf::Value* tokens = from.find("tokenizer.ggml.tokens");
  if (tokens == nullptr)
    throw std::runtime_error(from.path() + ": has no tokenizer (tokenizer.ggml.tokens) to copy");
  const auto n_tokens = static_cast<int64_t>(tokens->as_array().size());
  if (n_tokens > vocab_size) {
    throw std::runtime_error(from.path() + ": has " + std::to_string(n_tokens) +
                             " tokens, more than the checkpoint embeds (config.json's vocab_size " +
                             std::to_string(vocab_size) + "): is it the same model's GGUF?");
  }
  for (const auto& [key, value] : from.metadata()) {
    if (key.rfind("tokenizer.", 0) == 0) writer.set(key, value);
  }
}

void add_tokenizer_json_metadata(gguf::Writer& writer, const std::string& dir, int64_t vocab_size) {
  const std::string path = dir + "/tokenizer.json";
  if (!std::filesystem::is_regular_file(path)) {
    throw std::runtime_error(dir +
                             ": no tokenizer.json; give --vocab FROM.gguf to copy the tokenizer of a "
                             "GGUF model with the same vocabulary");
  }
  const JsonFile file = JsonFile::read(path);
  const json::Value& model = file.required(file.root, "model", "model");
  const std::string type = file.string_at(file.required(model, "type", "model.type"), "model.type");
  if (type != "BPE") {
    file.fail("model.type", "is '" + type +
                                "'; cleave converts BPE tokenizers (byte-level as GPT-2, Llama 3, Qwen2, "
                                "SmolLM; or with byte_fallback as Llama 2): give --vocab FROM.gguf instead");
  }
  const std::optional<JsonFile> config = read_tokenizer_config(path);
  if (file.bool_at(model.find("byte_fallback"), "model.byte_fallback", false)) {
    add_sentencepiece(writer, file, model, config, vocab_size);
  } else {
    add_byte_level(writer, file, model, vocab_size);
  }
  if (config) {
    if (const json::Value* chat = config->root.find("chat_template"); chat && chat->is_string()) {
      writer.set("tokenizer.chat_template", gguf::Value::str(chat->as_string()));
    }
  }
}

}  // namespace cleave::convert
