// JSON text in and out, on nlohmann-json: its SAX parser builds a json::Value
// directly (no second tree in memory for a 9 MB tokenizer.json), and dump()
// goes through nlohmann::ordered_json. The only file that includes the
// library's header, so json.h and its many includers stay light.
#include "util/json.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace cleave::json {
namespace {

using Library = nlohmann::ordered_json;

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

// "column 9: ..." for one line of text, "line 3, column 9: ..." for several
// (1-based; columns count bytes). `offset` is where reading stopped, or
// text.size() for the end of the input.
[[noreturn]] void fail_at(std::string_view text, size_t offset, const std::string& message) {
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  const size_t column = offset - line_start + 1;
  const std::string where = text.find('\n') != std::string_view::npos
                                ? "line " + std::to_string(line) + ", column " + std::to_string(column)
                                : "column " + std::to_string(column);
  throw ParseError(where + ": " + message, line, column);
}

// nlohmann's description without its own prefix and position ("[json.exception.
// parse_error.101] parse error at line 1, column 9: "), which the caller
// replaces by its own, and without "; last read: '...'", which for an
// unterminated string is the rest of the file.
std::string library_message(const nlohmann::detail::exception& error, const std::string& last_token) {
  std::string message = error.what();
  if (const size_t id_end = message.find("] "); message.rfind("[json.exception.", 0) == 0 && id_end != std::string::npos) {
    message.erase(0, id_end + 2);
  }
  if (message.rfind("parse error", 0) == 0) {
    if (const size_t colon = message.find(": "); colon != std::string::npos) message.erase(0, colon + 2);
  }
  const std::string last_read = "; last read: '" + last_token + "'";
  if (const size_t at = message.find(last_read); at != std::string::npos) message.erase(at, last_read.size());
  return message;
}

// The text for nlohmann's lexer, one byte at a time, remembering the last byte
// read: a SAX event (a key, the start of an array) has no position of its own,
// and this gives it one.
class TrackedByte {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackedByte(const char* at, const char** last_read) : at_(at), last_read_(last_read) {}
  reference operator*() const {
    *last_read_ = at_;
    return *at_;
  }
  TrackedByte& operator++() {
    ++at_;
    return *this;
  }
  bool operator==(const TrackedByte& other) const { return at_ == other.at_; }
  bool operator!=(const TrackedByte& other) const { return at_ != other.at_; }

 private:
  const char* at_;
  const char** last_read_;
};

// nlohmann's SAX events into a json::Value, refusing what the library accepts
// and the project does not: a repeated key, nesting deeper than kMaxDepth.
class ValueBuilder {
 public:
  explicit ValueBuilder(std::string_view text) : text_(text) {}

  Value parse() {
    const char* last_read = nullptr;
    last_read_ = &last_read;
    const TrackedByte begin(text_.data(), &last_read), end(text_.data() + text_.size(), &last_read);
    // Every failure throws ParseError; a false here is an event refused without one.
    if (!Library::sax_parse(begin, end, this)) fail_at(text_, text_.size(), "JSON text not read to its end");
    return std::move(root_);
  }

  bool null() { return add(Value()); }
  bool boolean(bool value) { return add(Value(value)); }
  bool number_integer(Library::number_integer_t value) { return add(Value(static_cast<int64_t>(value))); }
  bool number_unsigned(Library::number_unsigned_t value) { return add(Value(static_cast<uint64_t>(value))); }
  bool number_float(Library::number_float_t value, const Library::string_t&) { return add(Value(value)); }
  bool string(Library::string_t& value) { return add(Value(std::move(value))); }
  bool binary(Library::binary_t&) { return false; }  // only in binary formats, never in JSON text

  bool start_object(std::size_t) { return open(Value::object()); }
  bool start_array(std::size_t) { return open(Value::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(Library::string_t& key) {
    Open& object = open_.back();
    // The last byte read is the key's closing quote.
    if (is_repeated(object, key)) fail_at(text_, opening_quote(last_offset()), "repeated key \"" + key + "\"");
    object.key = std::move(key);
    return true;
  }

  bool parse_error(std::size_t position, const std::string& last_token, const nlohmann::detail::exception& error) {
    // `position` counts the bytes read, the one where reading stopped included
    // (one more than the text at its end).
    size_t offset = std::min(position, text_.size() + 1) - (position > 0 ? 1 : 0);
    const std::string message = library_message(error, last_token);
    // A string without its closing quote runs to the end: show where it opens.
    if (message.find("missing closing quote") != std::string::npos) offset = opening_quote(offset);
    fail_at(text_, offset, message);
  }

 private:
  struct Open {
    Value* value;     // the array or object being filled
    std::string key;  // an object's key whose value comes next
    // An object's key hashes -> member indices, once it has many keys.
    std::unordered_multimap<size_t, size_t> by_hash;
  };

  size_t last_offset() const { return static_cast<size_t>(*last_read_ - text_.data()); }

  // The opening quote of the string that ends (or is cut off) at `end`: the
  // nearest quote before it that no odd run of backslashes escapes.
  size_t opening_quote(size_t end) const {
    for (size_t i = std::min(end, text_.size()); i-- > 0;) {
      if (text_[i] != '"') continue;
      size_t backslashes = 0;
      while (backslashes < i && text_[i - 1 - backslashes] == '\\') ++backslashes;
      if (backslashes % 2 == 0) return i;
    }
    return end;
  }

  // Linear search for small objects; once there are many keys (safetensors
  // headers have one per tensor, a vocabulary one per token), a look-up by
  // hash that compares only the keys of the same hash.
  static bool is_repeated(Open& object, const std::string& key) {
    constexpr size_t kLinearLimit = 32;
    const Object& members = object.value->as_object();
    if (members.size() < kLinearLimit) {
      for (const Member& member : members) {
        if (member.first == key) return true;
      }
      return false;
    }
    const std::hash<std::string> hash;
    if (object.by_hash.empty()) {
      for (size_t i = 0; i < members.size(); ++i) object.by_hash.emplace(hash(members[i].first), i);
    }
    const size_t key_hash = hash(key);
    const auto [first, last] = object.by_hash.equal_range(key_hash);
    for (auto it = first; it != last; ++it) {
      if (members[it->second].first == key) return true;
    }
    object.by_hash.emplace(key_hash, members.size());  // the index its member gets
    return false;
  }

  // Places `value` in the array or object being filled (or as the root) and
  // returns where it now lives. That address stays valid while the value is
  // open: its parent grows only once it is closed.
  Value* place(Value value) {
    if (open_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Open& parent = open_.back();
    if (parent.value->is_array()) {
      Array& elements = parent.value->as_array();
      elements.push_back(std::move(value));
      return &elements.back();
    }
    Object& members = parent.value->as_object();
    members.emplace_back(std::move(parent.key), std::move(value));
    return &members.back().second;
  }

  bool add(Value value) {
    place(std::move(value));
    return true;
  }

  bool open(Value container) {
    if (open_.size() >= static_cast<size_t>(kMaxDepth)) {
      fail_at(text_, last_offset(), "nesting deeper than " + std::to_string(kMaxDepth) + " arrays/objects");
    }
    open_.push_back(Open{place(std::move(container)), {}, {}});
    return true;
  }

  bool close() {
    open_.pop_back();
    return true;
  }

  std::string_view text_;
  const char** last_read_ = nullptr;
  Value root_;
  std::vector<Open> open_;
};

// A json::Value as nlohmann's, for its writer.
Library to_library(const Value& value) {
  switch (value.type()) {
    case Type::null: return nullptr;
    case Type::boolean: return value.as_bool();
    case Type::number: {
      if (value.is_integer()) return value.as_int();
      const double d = value.as_double();
      if (!std::isfinite(d)) {
        throw std::runtime_error("cannot write " + std::string(std::isnan(d) ? "NaN" : "infinity") +
                                 " as JSON (JSON numbers must be finite): check the value before "
                                 "writing it, or write it as null or a string");
      }
      return d;
    }
    case Type::string: return value.as_string();
    case Type::array: {
      Library out = Library::array();
      auto& elements = out.get_ref<Library::array_t&>();
      elements.reserve(value.size());
      for (const Value& element : value.as_array()) elements.push_back(to_library(element));
      return out;
    }
    case Type::object: {
      Library out = Library::object();
      auto& members = out.get_ref<Library::object_t&>();
      members.reserve(value.size());
      // The keys are unique already: append, without ordered_map's search
      // for an existing key (quadratic in the number of keys).
      for (const auto& [key, member] : value.as_object()) members.emplace_back(key, to_library(member));
      return out;
    }
  }
  return nullptr;
}

}  // namespace

Value parse(std::string_view text) {
  // nlohmann skips a byte order mark; JSON text has none (parse_file skips it).
  if (text.substr(0, kByteOrderMark.size()) == kByteOrderMark) {
    fail_at(text, 0, "a byte order mark (EF BB BF) before the JSON value");
  }
  return ValueBuilder(text).parse();
}

Value parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot open JSON file " + path + ": " + std::strerror(errno));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  const std::string text = contents.str();
  // A UTF-8 byte order mark is not JSON, but editors write one; RFC 8259
  // allows a parser to ignore it.
  std::string_view view(text);
  if (view.substr(0, kByteOrderMark.size()) == kByteOrderMark) view.remove_prefix(kByteOrderMark.size());
  try {
    return parse(view);
  } catch (const ParseError& e) {
    throw ParseError(path + ": " + e.what(), e.line(), e.column());
  }
}

std::string Value::dump(int indent) const {
  return to_library(*this).dump(indent, ' ', /*ensure_ascii=*/false, Library::error_handler_t::replace);
}

}  // namespace cleave::json
