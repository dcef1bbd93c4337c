// A parsed JSON file whose errors name the file and the field, read the same
// way by every reader of outside JSON (tokenizer.json, tokenizer_config.json,
// config.json): "<path>: <field> <what is wrong>".
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/json.h"

namespace cleave {

struct JsonFile {
  std::string path;
  json::Value root;

  // Parses `path` (json::parse_file's errors name it); its top level must be an object.
  static JsonFile read(const std::string& path);

  [[noreturn]] void fail(const std::string& field, const std::string& message) const;
  // object[key], or a failure naming `field` as missing.
  const json::Value& required(const json::Value& object, const std::string& key, const std::string& field) const;
  const std::string& string_at(const json::Value& value, const std::string& field) const;
  // `fallback` when absent (nullptr) or null.
  bool bool_at(const json::Value* value, const std::string& field, bool fallback) const;
  const json::Array& array_at(const json::Value& value, const std::string& field) const;
};

// What Hugging Face's tokenizer files say, read once for every user
// (Tokenizer::from_tokenizer_json, cleave convert):
// model.merges of a BPE tokenizer.json, in either form ("left right" or
// ["left", "right"]), in merge order.
std::vector<std::pair<std::string, std::string>> read_bpe_merges(const JsonFile& tokenizer,
                                                                 const json::Value& model);
// A bos_token/eos_token/unk_token of tokenizer_config.json: a string or
// {"content": ...}; nullopt when absent or null.
std::optional<std::string> config_token(const JsonFile& config, const std::string& key);
// "X.tokenizer.json" -> "X.tokenizer_config.json"; any other name -> its
// folder's tokenizer_config.json.
std::string tokenizer_config_path(const std::string& tokenizer_json_path);

}  // namespace cleave
