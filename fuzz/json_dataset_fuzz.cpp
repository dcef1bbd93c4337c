// libFuzzer target: bytes as JSON text and as a data set. json::parse (every
// reader of outside JSON goes through it), the value written back by dump()
// reading back equal, the readers of tokenizer files over a parsed value
// (read_bpe_merges, config_token), and the bytes as a data set file
// (data::records_from_text): JSONL, with and without a label field, and plain
// text. Malformed input must be refused with std::runtime_error (json's
// ParseError and TypeError, data::DataError); a crash, a sanitizer report,
// another exception, a hang or an allocation beyond -rss_limit_mb is a finding.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "client/dataset.h"
#include "model/json_file.h"
#include "util/json.h"

namespace {

using namespace cleave;

void round_trip(const json::Value& value) {
  for (const int indent : {-1, 2}) {
    if (json::parse(value.dump(indent)) != value) __builtin_trap();
  }
}

void tokenizer_fields(const json::Value& root) {
  const JsonFile file{"fuzz.json", root};
  try {
    const json::Value* model = root.find("model");
    (void)read_bpe_merges(file, model ? *model : root);
  } catch (const std::runtime_error&) {
  }
  try {
    (void)config_token(file, "bos_token");
  } catch (const std::runtime_error&) {
  }
}

void records(std::string_view text, const std::string& name, const std::string& label_field) {
  try {
    data::ReadOptions options;
    options.label_field = label_field;
    (void)data::records_from_text(text, name, options);
  } catch (const data::DataError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const json::Value value = json::parse(text);
    round_trip(value);
    if (value.is_object()) tokenizer_fields(value);
  } catch (const json::ParseError&) {
  }
  records(text, "fuzz.jsonl", "");
  records(text, "fuzz.jsonl", "source");
  records(text, "fuzz.txt", "");
  return 0;
}
