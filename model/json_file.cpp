#include "model/json_file.h"

#include <stdexcept>

#include "model/bpe.h"

namespace cleave {
namespace {

std::string a_type(const json::Value& value) { return std::string("is a ") + json::type_name(value.type()); }

}  // namespace

JsonFile JsonFile::read(const std::string& path) {
  JsonFile file{path, json::parse_file(path)};
  if (!file.root.is_object()) file.fail("the top level", "is not a JSON object");
  return file;
}

void JsonFile::fail(const std::string& field, const std::string& message) const {
  throw std::runtime_error(path + ": " + field + " " + message);
}

const json::Value& JsonFile::required(const json::Value& object, const std::string& key,
                                      const std::string& field) const {
  const json::Value* value = object.is_object() ? object.find(key) : nullptr;
  if (value == nullptr) fail(field, "is missing");
  return *value;
}

const std::string& JsonFile::string_at(const json::Value& value, const std::string& field) const {
  if (!value.is_string()) fail(field, a_type(value) + ", not a string");
  return value.as_string();
}

bool JsonFile::bool_at(const json::Value* value, const std::string& field, bool fallback) const {
  if (value == nullptr || value->is_null()) return fallback;
  if (!value->is_bool()) fail(field, a_type(*value) + ", not true or false");
  return value->as_bool();
}

const json::Array& JsonFile::array_at(const json::Value& value, const std::string& field) const {
  if (!value.is_array()) fail(field, a_type(value) + ", not an array");
  return value.as_array();
}

std::vector<std::pair<std::string, std::string>> read_bpe_merges(const JsonFile& tokenizer,
                                                                 const json::Value& model) {
  const json::Array& merges = tokenizer.array_at(tokenizer.required(model, "merges", "model.merges"), "model.merges");
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string field = "model.merges[" + std::to_string(i) + "]";
    if (merges[i].is_array()) {  // ["left", "right"], the newer form
      if (merges[i].size() != 2) tokenizer.fail(field, "is not a pair of tokens");
      out.emplace_back(tokenizer.string_at(merges[i][0], field + "[0]"), tokenizer.string_at(merges[i][1], field + "[1]"));
      continue;
    }
    auto merge = split_merge(tokenizer.string_at(merges[i], field));
    if (!merge) tokenizer.fail(field, "= '" + merges[i].as_string() + "' is not two tokens separated by a space");
    out.push_back(std::move(*merge));
  }
  return out;
}

std::optional<std::string> config_token(const JsonFile& config, const std::string& key) {
  const json::Value* entry = config.root.find(key);
  if (entry == nullptr || entry->is_null()) return std::nullopt;
  if (entry->is_object()) {
    return config.string_at(config.required(*entry, "content", key + ".content"), key + ".content");
  }
  return config.string_at(*entry, key);
}

std::string tokenizer_config_path(const std::string& tokenizer_json_path) {
  const std::string& path = tokenizer_json_path;
  const std::string suffix = "tokenizer.json";
  if (path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return path.substr(0, path.size() - suffix.size()) + "tokenizer_config.json";
  }
  const size_t slash = path.rfind('/');
  return (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + "tokenizer_config.json";
}

}  // namespace cleave
