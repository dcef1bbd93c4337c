// The project's JSON value type, for JSONL data sets, PEFT adapter_config.json,
// safetensors headers, tokenizer files and metrics files. Reading and writing
// JSON text is nlohmann-json's (util/json_text.cpp, the one file that
// includes it); this wrapper adds what the project needs on top: repeated keys
// refused, errors that name the line and column (and the file), a nesting
// limit, and numbers that stay exact.
//
// Numbers keep a double and, when the value is integral and fits, an exact
// int64: "9007199254740993" reads back as that integer even though its double
// is 9007199254740992. Objects keep their keys in file order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace cleave::json {

// Nesting deeper than this many arrays/objects is refused by the parser, so a
// hostile file cannot exhaust the stack.
constexpr int kMaxDepth = 64;

// Malformed JSON text. what() reads "column 9: syntax error while parsing
// object key - unexpected '}'; expected string literal" (or "line 3,
// column 9: ..." for text of several lines): the place where reading stopped,
// then nlohmann-json's description or the wrapper's own ("repeated key ...").
class ParseError : public std::runtime_error {
 public:
  ParseError(const std::string& message, size_t line, size_t column);
  size_t line() const { return line_; }      // 1-based
  size_t column() const { return column_; }  // 1-based, in bytes
 private:
  size_t line_, column_;
};

// A value used as the wrong type ("expected a string, got number"), or a
// missing object key.
class TypeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Type { null, boolean, number, string, array, object };
const char* type_name(Type type);  // "null", "boolean", "number", ...

class Value;
using Array = std::vector<Value>;
using Member = std::pair<std::string, Value>;
using Object = std::vector<Member>;  // in insertion order, keys unique

class Value {
 public:
  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : data_(b) {}
  Value(double d);
  Value(int64_t i) : data_(Number{static_cast<double>(i), i}) {}
  Value(int32_t i) : Value(static_cast<int64_t>(i)) {}
  Value(uint32_t i) : Value(static_cast<int64_t>(i)) {}
  Value(uint64_t u);  // exact when it fits in int64, else a double
  Value(const char* s) : data_(std::string(s)) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(std::string_view s) : data_(std::string(s)) {}
  Value(Array a) : data_(std::move(a)) {}
  Value(Object o);  // throws TypeError on a repeated key

  static Value array() { return Value(Array{}); }
  static Value object() { return Value(Object{}); }

  Type type() const { return static_cast<Type>(data_.index()); }
  bool is_null() const { return type() == Type::null; }
  bool is_bool() const { return type() == Type::boolean; }
  bool is_number() const { return type() == Type::number; }
  // A number with an exact int64 value.
  bool is_integer() const;
  bool is_string() const { return type() == Type::string; }
  bool is_array() const { return type() == Type::array; }
  bool is_object() const { return type() == Type::object; }

  // Typed access; each throws TypeError naming the actual type.
  bool as_bool() const;
  double as_double() const;
  int64_t as_int() const;  // also throws for 2.5 or 1e300
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // Object members. find() returns nullptr when absent (or not an object).
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  const Value& at(std::string_view key) const;  // throws TypeError if absent
  // Sets (or replaces) a member, keeping the position of an existing key. A
  // null value becomes an empty object first.
  Value& set(std::string_view key, Value value);
  // Appends to an array (a null value becomes an empty array first).
  void push_back(Value value);
  // Elements of an array or members of an object; throws for other types.
  size_t size() const;
  const Value& operator[](size_t index) const;  // array element, bounds-checked

  // Numbers compare by exact integer when both have one, else by double.
  friend bool operator==(const Value& a, const Value& b);
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

  // Compact ("{\"a\":[1,2]}") when indent < 0, else one member or element per
  // line indented by `indent` spaces per level. Numbers are written in a short
  // form that reads back as the same number (exact integers as integers).
  // Invalid UTF-8 in a string is written as U+FFFD, so the output is always
  // JSON that parse() reads. Throws std::runtime_error for NaN or infinity,
  // which JSON cannot represent.
  std::string dump(int indent = -1) const;

 private:
  struct Number {
    double value;
    std::optional<int64_t> exact;
  };
  std::variant<std::nullptr_t, bool, Number, std::string, Array, Object> data_;
};

// Parses a whole JSON text (one value, surrounded only by whitespace). Throws
// ParseError. Strings must be valid UTF-8; \uXXXX escapes, surrogate pairs
// included, become UTF-8; a lone surrogate, a control character inside a
// string, a repeated object key, a leading zero, a trailing comma, a byte
// order mark and anything after the value are errors.
Value parse(std::string_view text);

// Reads and parses a file; errors name the file ("adapter_config.json: line 3,
// column 5: ...").
Value parse_file(const std::string& path);

}  // namespace cleave::json
