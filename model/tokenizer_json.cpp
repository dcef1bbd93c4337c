// Tokenizer::from_tokenizer_json: a Hugging Face tokenizer.json of a
// byte-level BPE model (GPT-2, Llama 3, ...), and BOS/EOS from the
// tokenizer_config.json beside it, mapped onto the Vocabulary and BpeRules a
// GGUF `gpt2` vocabulary gives. What cleave could not reproduce (a normalizer,
// another model type, a pre-tokenizer step it does not know) is refused,
// naming the file and the field, rather than tokenized differently.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/bpe.h"
#include "model/json_file.h"
#include "model/tokenizer.h"
#include "util/json.h"

namespace cleave {
namespace {

// The regex a Split step cuts with: {"Regex": "..."} as written, {"String": "..."} literally.
std::string split_pattern(const JsonFile& source, const json::Value& step,
                          const std::string& field) {
  const json::Value& pattern = source.required(step, "pattern", field + ".pattern");
  if (const json::Value* regex = pattern.find("Regex")) {
    return source.string_at(*regex, field + ".pattern.Regex");
  }
  if (const json::Value* literal = pattern.find("String")) {
    const std::string& text = source.string_at(*literal, field + ".pattern.String");
    std::string quoted;
    for (const char c : text) {
      if (std::string("\\^$.|?*+()[]{}").find(c) != std::string::npos) quoted += '\\';
      quoted += c;
    }
    return quoted;
  }
  source.fail(field + ".pattern", "has neither Regex nor String");
}

struct PreTokenizerSteps {
  std::vector<std::string> patterns;
  bool byte_level = false;
  bool add_prefix_space = false;
};

// Reads one pre-tokenizer step (a Sequence recursively) into `steps`.
void read_pre_tokenizer(const JsonFile& source, const json::Value& step, const std::string& field,
                        PreTokenizerSteps& steps) {
  const std::string type =
      source.string_at(source.required(step, "type", field + ".type"), field + ".type");
  if (type == "Sequence") {
    const json::Array& parts = source.array_at(
        source.required(step, "pretokenizers", field + ".pretokenizers"), field + ".pretokenizers");
    for (size_t i = 0; i < parts.size(); ++i) {
      read_pre_tokenizer(source, parts[i], field + ".pretokenizers[" + std::to_string(i) + "]",
                         steps);
    }
    return;
  }
  // cleave cuts the text and then maps its bytes; Hugging Face maps them in
  // the ByteLevel step, so a step after it would see the mapped text.
  if (steps.byte_level)
    source.fail(
        field,
        "comes after the ByteLevel step; cleave cuts the text before the byte-level mapping");
  if (type == "ByteLevel") {
    steps.byte_level = true;
    // Hugging Face adds the space to each piece earlier steps made; cleave only to the whole text.
    steps.add_prefix_space =
        source.bool_at(step.find("add_prefix_space"), field + ".add_prefix_space", true);
    if (steps.add_prefix_space && !steps.patterns.empty()) {
      source.fail(field + ".add_prefix_space",
                  "is true after a Split step; cleave adds the space only before the whole text");
    }
    if (source.bool_at(step.find("use_regex"), field + ".use_regex", true)) {
      steps.patterns.push_back(kGpt2SplitPattern);
    }
    return;
  }
  if (type == "Split") {
    const std::string behavior = source.string_at(
        source.required(step, "behavior", field + ".behavior"), field + ".behavior");
    if (behavior != "Isolated") {
      source.fail(field + ".behavior",
                  "is '" + behavior + "'; cleave splits only with behavior Isolated");
    }
    if (source.bool_at(step.find("invert"), field + ".invert", false)) {
      source.fail(field + ".invert", "is true; cleave splits only on the matches themselves");
    }
    steps.patterns.push_back(split_pattern(source, step, field));
    return;
  }
  if (type == "Digits") {
    const bool individual =
        source.bool_at(step.find("individual_digits"), field + ".individual_digits", false);
    steps.patterns.push_back(individual ? R"(\p{N})" : R"(\p{N}+)");
    return;
  }
  source.fail(field + ".type", "is '" + type +
                                   "', a pre-tokenizer cleave does not read (it reads ByteLevel, "
                                   "Split, Digits and a Sequence of them)");
}

// Whether the post-processor puts `bos` before the text (TemplateProcessing's
// "single" starting with it), the rule when the config has no add_bos_token.
bool template_adds(const json::Value* processor, const std::string& bos) {
  if (processor == nullptr || !processor->is_object()) return false;
  const json::Value* type = processor->find("type");
  if (type == nullptr || !type->is_string()) return false;
  if (type->as_string() == "Sequence") {
    const json::Value* parts = processor->find("processors");
    if (parts == nullptr || !parts->is_array()) return false;
    for (const json::Value& part : parts->as_array()) {
      if (template_adds(&part, bos)) return true;
    }
    return false;
  }
  if (type->as_string() != "TemplateProcessing") return false;
  const json::Value* single = processor->find("single");
  if (single == nullptr || !single->is_array() || single->size() == 0) return false;
  const json::Value* first = (*single)[0].find("SpecialToken");
  const json::Value* id = first ? first->find("id") : nullptr;
  return id != nullptr && id->is_string() && id->as_string() == bos;
}

}  // namespace

Tokenizer Tokenizer::from_tokenizer_json(const std::string& path) {
  const JsonFile source = JsonFile::read(path);
  const json::Value& root = source.root;

  const json::Value& model = source.required(root, "model", "model");
  const std::string type =
      source.string_at(source.required(model, "type", "model.type"), "model.type");
  if (type != "BPE") {
    source.fail("model.type", "is '" + type +
                                  "'; cleave reads tokenizer.json files of model type BPE with a "
                                  "ByteLevel pre-tokenizer (GPT-2, Llama 3, Qwen2)");
  }
  if (source.bool_at(model.find("byte_fallback"), "model.byte_fallback", false)) {
    source.fail("model.byte_fallback",
                "is true: a SentencePiece-style BPE (Llama 2, Mistral); "
                "give cleave the model's GGUF instead");
  }
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json::Value* value = model.find(affix);
    if (value != nullptr && !value->is_null() &&
        !source.string_at(*value, std::string("model.") + affix).empty()) {
      source.fail(std::string("model.") + affix, "is set; cleave's BPE has no subword affixes");
    }
  }
  const json::Value* normalizer = root.find("normalizer");
  if (normalizer != nullptr && !normalizer->is_null()) {
    const json::Value* kind = normalizer->find("type");
    source.fail(
        "normalizer",
        "is " + (kind && kind->is_string() ? "'" + kind->as_string() + "'" : std::string("set")) +
            "; cleave applies no normalizer, so it would not give this tokenizer's ids");
  }

  PreTokenizerSteps steps;
  const json::Value* pre_tokenizer = root.find("pre_tokenizer");
  if (pre_tokenizer != nullptr && !pre_tokenizer->is_null()) {
    read_pre_tokenizer(source, *pre_tokenizer, "pre_tokenizer", steps);
  }
  if (!steps.byte_level) {
    source.fail("pre_tokenizer",
                "has no ByteLevel step; cleave reads byte-level BPE tokenizers only");
  }

  // Tokens by id: the model's vocabulary, then the added tokens.
  std::vector<std::optional<std::string>> texts;
  std::vector<TokenKind> kinds;
  const auto place = [&](int64_t id, const std::string& text, TokenKind kind,
                         const std::string& field) {
    if (id < 0 || id >= INT32_MAX)
      source.fail(field, "has id " + std::to_string(id) + ", outside 0..2^31-2");
    const size_t at = static_cast<size_t>(id);
    if (at >= texts.size()) {
      texts.resize(at + 1);
      kinds.resize(at + 1, TokenKind::NORMAL);
    }
    if (texts[at] && *texts[at] != text) {
      source.fail(field, "gives id " + std::to_string(id) + " to '" + text +
                             "', which already is '" + *texts[at] + "'");
    }
    texts[at] = text;
    kinds[at] = kind;
  };
  const json::Value& vocab_json = source.required(model, "vocab", "model.vocab");
  if (!vocab_json.is_object()) source.fail("model.vocab", "is not an object of token to id");
  for (const auto& [text, id] : vocab_json.as_object()) {
    if (!id.is_integer()) source.fail("model.vocab[\"" + text + "\"]", "is not an integer id");
    place(id.as_int(), text, TokenKind::NORMAL, "model.vocab[\"" + text + "\"]");
  }
  if (const json::Value* added = root.find("added_tokens")) {
    const json::Array& entries = source.array_at(*added, "added_tokens");
    for (size_t i = 0; i < entries.size(); ++i) {
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      const json::Value& entry = entries[i];
      const json::Value& id = source.required(entry, "id", field + ".id");
      if (!id.is_integer()) source.fail(field + ".id", "is not an integer");
      const std::string& content = source.string_at(
          source.required(entry, "content", field + ".content"), field + ".content");
      for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
        if (source.bool_at(entry.find(flag), field + "." + flag, false)) {
          source.fail(field + "." + flag, "is true for '" + content +
                                              "'; cleave matches added tokens exactly as written");
        }
      }
      const bool special = source.bool_at(entry.find("special"), field + ".special", false);
      place(id.as_int(), content, special ? TokenKind::CONTROL : TokenKind::USER_DEFINED, field);
    }
  }

  Vocabulary vocab;
  vocab.tokens.reserve(texts.size());
  std::unordered_map<std::string, TokenId> ids;
  for (size_t id = 0; id < texts.size(); ++id) {
    if (!texts[id])
      source.fail("model.vocab",
                  "has no token with id " + std::to_string(id) + " (nor has added_tokens)");
    vocab.tokens.push_back(*texts[id]);
    ids[*texts[id]] = static_cast<TokenId>(id);
  }
  if (vocab.tokens.empty()) source.fail("model.vocab", "is empty");
  vocab.kinds = std::move(kinds);
  vocab.scores.assign(vocab.tokens.size(), 0.0f);
  vocab.add_space_prefix = false;

  BpeRules rules;
  rules.merges = read_bpe_merges(source, model);
  rules.split_patterns = steps.patterns;
  rules.ignore_merges = source.bool_at(model.find("ignore_merges"), "model.ignore_merges", false);
  rules.add_prefix_space = steps.add_prefix_space;

  // BOS and EOS are named in tokenizer_config.json; a tokenizer with a single
  // special token (GPT-2's <|endoftext|>) uses it for both when it is not.
  const std::string config_path = tokenizer_config_path(path);
  std::optional<JsonFile> config;
  if (std::ifstream(config_path).good()) config = JsonFile::read(config_path);
  std::vector<TokenId> special_ids;
  for (size_t id = 0; id < vocab.kinds.size(); ++id) {
    if (vocab.kinds[id] == TokenKind::CONTROL) special_ids.push_back(static_cast<TokenId>(id));
  }
  const auto special_id = [&](const std::string& key) -> TokenId {
    const std::optional<std::string> text = config ? config_token(*config, key) : std::nullopt;
    if (text) {
      const auto found = ids.find(*text);
      if (found == ids.end()) config->fail(key, "'" + *text + "' is not a token of " + path);
      return found->second;
    }
    if (special_ids.size() == 1) return special_ids[0];
    throw std::runtime_error(path + ": no " + key + ": " +
                             (config ? config_path + " does not name it"
                                          : "there is no " + config_path + " to name it") +
                             ", and the tokenizer has " + std::to_string(special_ids.size()) +
                             " special tokens, not one to take");
  };
  vocab.bos = special_id("bos_token");
  vocab.eos = special_id("eos_token");
  vocab.unk = 0;
  const json::Value* add_bos = config ? config->root.find("add_bos_token") : nullptr;
  vocab.add_bos = add_bos != nullptr
                      ? config->bool_at(add_bos, "add_bos_token", false)
                      : template_adds(root.find("post_processor"), vocab.tokens[vocab.bos]);
  // Only the plain string form; a list of named templates is left out, as convert does.
  const json::Value* chat_template = config ? config->root.find("chat_template") : nullptr;
  if (chat_template != nullptr && chat_template->is_string()) {
    vocab.chat_template = chat_template->as_string();
  }

  try {
    return Tokenizer(std::move(vocab), rules);
  } catch (const std::runtime_error& error) {
    throw std::runtime_error(path + ": " + error.what());
  }
}

}  // namespace cleave
