#include "client/dataset.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "util/json.h"

namespace cleave::data {

namespace {

constexpr const char* kExpectedShape =
    "expected a JSON object with \"text\" or \"prompt\"+\"completion\"";

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r\f\v") == std::string_view::npos;
}

std::string_view strip_byte_order_mark(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  return text;
}

// Calls visit(line, line_number) for each line, without its "\n" or "\r\n".
template <typename Visit>
void for_each_line(std::string_view text, Visit visit) {
  size_t line_number = 1;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    visit(line, line_number++);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

std::string keys_of(const json::Object& members) {
  if (members.empty()) return "an empty object";
  std::string keys = "keys";
  for (size_t i = 0; i < members.size() && i < 8; ++i) {
    keys += (i == 0 ? " \"" : ", \"") + members[i].first + "\"";
  }
  if (members.size() > 8) keys += ", ...";
  return keys;
}

const std::string& string_field(const json::Value& line, const char* key,
                                const std::string& where) {
  const json::Value& value = line.at(key);
  if (!value.is_string()) {
    throw DataError(where + ": \"" + key + "\" must be a string, got " +
                    json::type_name(value.type()));
  }
  return value.as_string();
}

std::string label_of(const json::Value& line, const std::string& field, const std::string& where) {
  const json::Value* value = line.find(field);
  if (!value) {
    throw DataError(where + ": no \"" + field + "\" field, which was asked for as the label");
  }
  if (value->is_string()) return value->as_string();
  if (value->is_integer()) return std::to_string(value->as_int());
  throw DataError(where + ": label field \"" + field + "\" must be a string or an integer, got " +
                  json::type_name(value->type()));
}

Record record_from_line(std::string_view line, const std::string& where,
                        const ReadOptions& options) {
  json::Value value;
  try {
    value = json::parse(line);
  } catch (const json::ParseError& e) {
    throw DataError(where + ": " + kExpectedShape + ": " + e.what());
  }
  if (!value.is_object()) {
    throw DataError(where + ": " + kExpectedShape + ", got " + json::type_name(value.type()));
  }
  Record record;
  if (value.contains("text")) {
    record.text = string_field(value, "text", where);
  } else if (value.contains("prompt") && value.contains("completion")) {
    record.prompt = string_field(value, "prompt", where);
    record.text = string_field(value, "completion", where);
    record.has_prompt = true;
  } else {
    throw DataError(where + ": " + kExpectedShape + ", got " + keys_of(value.as_object()));
  }
  if (!options.label_field.empty()) record.label = label_of(value, options.label_field, where);
  return record;
}

std::vector<Record> read_jsonl(std::string_view text, const std::string& path,
                               const ReadOptions& options) {
  std::vector<Record> records;
  for_each_line(text, [&](std::string_view line, size_t line_number) {
    if (is_blank(line)) return;
    records.push_back(record_from_line(line, path + ":" + std::to_string(line_number), options));
    records.back().source = path;
    records.back().line = static_cast<int64_t>(line_number);
  });
  return records;
}

}  // namespace

bool is_jsonl_path(const std::string& path) {
  const std::string suffix = ".jsonl";
  return path.size() >= suffix.size() &&
         path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw DataError("cannot read data file " + path + ": " + std::strerror(errno));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) throw DataError("error while reading data file " + path);
  return contents.str();
}

std::vector<std::string> split_documents(std::string_view text) {
  std::vector<std::string> documents;
  std::string current;
  bool open = false;
  for_each_line(text, [&](std::string_view line, size_t) {
    if (is_blank(line)) {
      if (open) documents.push_back(std::move(current));
      current.clear();
      open = false;
      return;
    }
    if (open) current += '\n';
    current.append(line);
    open = true;
  });
  if (open) documents.push_back(std::move(current));
  return documents;
}

std::vector<Record> read_records(const std::string& path, const ReadOptions& options) {
  return records_from_text(read_text_file(path), path, options);
}

std::vector<Record> records_from_text(std::string_view contents, const std::string& path,
                                      const ReadOptions& options) {
  const std::string_view text = strip_byte_order_mark(contents);
  std::vector<Record> records;
  if (is_jsonl_path(path)) {
    records = read_jsonl(text, path, options);
  } else {
    if (!options.label_field.empty()) {
      throw DataError(path + ": plain text has no fields, so the label field \"" +
                      options.label_field + "\" cannot be read; use a .jsonl file");
    }
    for (std::string& document : split_documents(text)) {
      Record record;
      record.text = std::move(document);
      record.source = path;
      records.push_back(std::move(record));
    }
  }
  if (records.empty()) {
    throw DataError(path + ": no records (the file is empty or only blank lines)");
  }
  return records;
}

std::vector<Record> read_records(const std::vector<std::string>& paths,
                                 const ReadOptions& options) {
  std::vector<Record> records;
  for (const std::string& path : paths) {
    std::vector<Record> more = read_records(path, options);
    records.insert(records.end(), std::make_move_iterator(more.begin()),
                   std::make_move_iterator(more.end()));
  }
  return records;
}

int64_t Example::n_targets() const {
  int64_t count = 0;
  for (const uint8_t m : loss_mask) count += m != 0;
  return count;
}

Example make_text_example(const std::vector<int32_t>& text_tokens, int32_t bos, int32_t eos) {
  return make_prompt_example({}, text_tokens, bos, eos);
}

Example make_prompt_example(const std::vector<int32_t>& prompt_tokens,
                            const std::vector<int32_t>& completion_tokens, int32_t bos,
                            int32_t eos) {
  Example example;
  example.tokens.reserve(prompt_tokens.size() + completion_tokens.size() + 2);
  example.tokens.push_back(bos);
  example.tokens.insert(example.tokens.end(), prompt_tokens.begin(), prompt_tokens.end());
  example.tokens.insert(example.tokens.end(), completion_tokens.begin(), completion_tokens.end());
  example.tokens.push_back(eos);
  // Targets tokens[1..]: the prompt's tokens carry no loss, the completion's
  // and EOS do.
  example.loss_mask.assign(example.tokens.size() - 1, 1);
  std::fill(example.loss_mask.begin(), example.loss_mask.begin() + prompt_tokens.size(), 0);
  return example;
}

}  // namespace cleave::data
