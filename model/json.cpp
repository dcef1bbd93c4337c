#include "model/json.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <unordered_set>

namespace cleave::json {

namespace {

// Largest magnitude for which a double converts to int64 without overflow.
constexpr double kTwoTo63 = 9223372036854775808.0;

std::optional<int64_t> integral_value(double d) {
  if (std::isfinite(d) && std::trunc(d) == d && d >= -kTwoTo63 && d < kTwoTo63) {
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

void append_utf8(std::string& out, uint32_t code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

std::string hex_byte(unsigned char c) {
  static const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[c >> 4] + digits[c & 0xF];
}

}  // namespace

ParseError::ParseError(const std::string& message, size_t line, size_t column)
    : std::runtime_error(message), line_(line), column_(column) {}

const char* type_name(Type type) {
  switch (type) {
    case Type::null: return "null";
    case Type::boolean: return "boolean";
    case Type::number: return "number";
    case Type::string: return "string";
    case Type::array: return "array";
    case Type::object: return "object";
  }
  return "unknown";
}

// ---------------------------------------------------------------- Value

Value::Value(double d) : data_(Number{d, integral_value(d)}) {}

Value::Value(uint64_t u) {
  if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    data_ = Number{static_cast<double>(u), static_cast<int64_t>(u)};
  } else {
    data_ = Number{static_cast<double>(u), std::nullopt};
  }
}

Value::Value(Object o) {
  for (size_t i = 0; i < o.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (o[i].first == o[j].first) {
        throw TypeError("JSON object has the key \"" + o[i].first + "\" twice");
      }
    }
  }
  data_ = std::move(o);
}

namespace {
[[noreturn]] void wrong_type(const char* expected, Type actual) {
  throw TypeError(std::string("expected a JSON ") + expected + ", got " + type_name(actual));
}
}  // namespace

bool Value::is_integer() const {
  return is_number() && std::get<Number>(data_).exact.has_value();
}

bool Value::as_bool() const {
  if (!is_bool()) wrong_type("boolean", type());
  return std::get<bool>(data_);
}

double Value::as_double() const {
  if (!is_number()) wrong_type("number", type());
  return std::get<Number>(data_).value;
}

int64_t Value::as_int() const {
  if (!is_number()) wrong_type("integer", type());
  const Number& n = std::get<Number>(data_);
  if (!n.exact) {
    std::ostringstream message;
    message << "expected a JSON integer (within int64), got " << n.value;
    throw TypeError(message.str());
  }
  return *n.exact;
}

const std::string& Value::as_string() const {
  if (!is_string()) wrong_type("string", type());
  return std::get<std::string>(data_);
}

const Array& Value::as_array() const {
  if (!is_array()) wrong_type("array", type());
  return std::get<Array>(data_);
}

Array& Value::as_array() {
  if (!is_array()) wrong_type("array", type());
  return std::get<Array>(data_);
}

const Object& Value::as_object() const {
  if (!is_object()) wrong_type("object", type());
  return std::get<Object>(data_);
}

Object& Value::as_object() {
  if (!is_object()) wrong_type("object", type());
  return std::get<Object>(data_);
}

const Value* Value::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const Member& member : std::get<Object>(data_)) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

Value* Value::find(std::string_view key) {
  return const_cast<Value*>(static_cast<const Value&>(*this).find(key));
}

const Value& Value::at(std::string_view key) const {
  if (!is_object()) wrong_type("object", type());
  const Value* value = find(key);
  if (!value) throw TypeError("JSON object has no key \"" + std::string(key) + "\"");
  return *value;
}

Value& Value::set(std::string_view key, Value value) {
  if (is_null()) data_ = Object{};
  Object& members = as_object();
  for (Member& member : members) {
    if (member.first == key) {
      member.second = std::move(value);
      return member.second;
    }
  }
  members.emplace_back(std::string(key), std::move(value));
  return members.back().second;
}

void Value::push_back(Value value) {
  if (is_null()) data_ = Array{};
  as_array().push_back(std::move(value));
}

size_t Value::size() const {
  if (is_array()) return std::get<Array>(data_).size();
  if (is_object()) return std::get<Object>(data_).size();
  wrong_type("array or object", type());
}

const Value& Value::operator[](size_t index) const {
  const Array& elements = as_array();
  if (index >= elements.size()) {
    throw TypeError("JSON array index " + std::to_string(index) + " out of range (size " +
                    std::to_string(elements.size()) + ")");
  }
  return elements[index];
}

bool operator==(const Value& a, const Value& b) {
  if (a.type() != b.type()) return false;
  if (a.is_number()) {
    const auto& x = std::get<Value::Number>(a.data_);
    const auto& y = std::get<Value::Number>(b.data_);
    if (x.exact && y.exact) return *x.exact == *y.exact;
    return x.value == y.value;
  }
  switch (a.type()) {
    case Type::null: return true;
    case Type::boolean: return a.as_bool() == b.as_bool();
    case Type::string: return a.as_string() == b.as_string();
    case Type::array: return a.as_array() == b.as_array();
    case Type::object: return a.as_object() == b.as_object();
    case Type::number: break;
  }
  return false;
}

// ---------------------------------------------------------------- Parser

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Value parse_document() {
    skip_whitespace();
    Value value = parse_value(0);
    skip_whitespace();
    if (pos_ != text_.size()) fail("unexpected " + describe(pos_) + " after the JSON value");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const { fail_at(pos_, message); }

  [[noreturn]] void fail_at(size_t at, const std::string& message) const {
    size_t line = 1, line_start = 0;
    for (size_t i = 0; i < at && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    const size_t column = at - line_start + 1;
    const bool several_lines = text_.find('\n') != std::string_view::npos;
    std::string where = several_lines
        ? "line " + std::to_string(line) + ", column " + std::to_string(column)
        : "column " + std::to_string(column);
    throw ParseError(where + ": " + message, line, column);
  }

  std::string describe(size_t at) const {
    if (at >= text_.size()) return "end of input";
    const auto c = static_cast<unsigned char>(text_[at]);
    if (c >= 0x21 && c < 0x7F) return std::string("character '") + static_cast<char>(c) + "'";
    return "byte " + hex_byte(c);
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_whitespace() {
    while (!at_end()) {
      const char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  void expect(char c, const char* context) {
    if (peek() != c || at_end()) {
      fail(std::string("expected '") + c + "' " + context + ", got " + describe(pos_));
    }
    ++pos_;
  }

  Value parse_value(int depth) {
    if (at_end()) fail("unexpected end of input, expected a value");
    switch (text_[pos_]) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return Value(parse_string());
      case 't': return parse_literal("true", Value(true));
      case 'f': return parse_literal("false", Value(false));
      case 'n': return parse_literal("null", Value());
      default:
        if (text_[pos_] == '-' || (text_[pos_] >= '0' && text_[pos_] <= '9')) {
          return parse_number();
        }
        fail("expected a value, got " + describe(pos_));
    }
  }

  Value parse_literal(std::string_view word, Value value) {
    if (text_.substr(pos_, word.size()) != word) {
      fail("expected a value, got " + describe(pos_) + " (did you mean " + std::string(word) +
           "?)");
    }
    pos_ += word.size();
    return value;
  }

  void check_depth(int depth) const {
    if (depth > kMaxDepth) {
      fail("nesting deeper than " + std::to_string(kMaxDepth) + " arrays/objects");
    }
  }

  Value parse_array(int depth) {
    check_depth(depth);
    ++pos_;  // '['
    Array elements;
    skip_whitespace();
    if (peek() == ']' && !at_end()) {
      ++pos_;
      return Value(std::move(elements));
    }
    while (true) {
      skip_whitespace();
      if (peek() == ']' && !at_end()) fail("trailing ',' before ']'");
      elements.push_back(parse_value(depth));
      skip_whitespace();
      if (peek() == ',' && !at_end()) {
        ++pos_;
        continue;
      }
      if (peek() == ']' && !at_end()) {
        ++pos_;
        break;
      }
      fail("expected ',' or ']' after an array element, got " + describe(pos_));
    }
    return Value(std::move(elements));
  }

  Value parse_object(int depth) {
    check_depth(depth);
    ++pos_;  // '{'
    Object members;
    std::unordered_set<std::string> seen;  // used once the object gets large
    skip_whitespace();
    if (peek() == '}' && !at_end()) {
      ++pos_;
      Value value;
      value.data_ = std::move(members);
      return value;
    }
    while (true) {
      skip_whitespace();
      if (peek() != '"' || at_end()) {
        if (peek() == '}' && !at_end()) fail("trailing ',' before '}'");
        fail("expected a string key, got " + describe(pos_));
      }
      const size_t key_pos = pos_;
      std::string key = parse_string();
      if (is_duplicate(members, seen, key)) fail_at(key_pos, "repeated key \"" + key + "\"");
      skip_whitespace();
      expect(':', "after an object key");
      skip_whitespace();
      Value value = parse_value(depth);
      members.emplace_back(std::move(key), std::move(value));
      skip_whitespace();
      if (peek() == ',' && !at_end()) {
        ++pos_;
        continue;
      }
      if (peek() == '}' && !at_end()) {
        ++pos_;
        break;
      }
      fail("expected ',' or '}' after an object member, got " + describe(pos_));
    }
    Value value;
    value.data_ = std::move(members);
    return value;
  }

  // Linear search for small objects; a hash set once there are many keys
  // (safetensors headers have one per tensor).
  static bool is_duplicate(const Object& members, std::unordered_set<std::string>& seen,
                           const std::string& key) {
    constexpr size_t kLinearLimit = 32;
    if (members.size() < kLinearLimit) {
      for (const Member& member : members) {
        if (member.first == key) return true;
      }
      return false;
    }
    if (seen.empty()) {
      for (const Member& member : members) seen.insert(member.first);
    }
    return !seen.insert(key).second;
  }

  uint32_t parse_hex4() {
    if (pos_ + 4 > text_.size()) fail("expected 4 hex digits after \\u, got end of input");
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_];
      uint32_t digit;
      if (c >= '0' && c <= '9') digit = c - '0';
      else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
      else fail("expected 4 hex digits after \\u, got " + describe(pos_));
      value = value * 16 + digit;
      ++pos_;
    }
    return value;
  }

  void parse_escape(std::string& out) {
    const size_t escape_pos = pos_;
    ++pos_;  // backslash
    if (at_end()) fail("unterminated string");
    const char c = text_[pos_++];
    switch (c) {
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case '/': out += '/'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default:
        fail_at(escape_pos, "invalid escape: backslash followed by " + describe(escape_pos + 1));
    }
    uint32_t code_point = parse_hex4();
    if (code_point >= 0xDC00 && code_point <= 0xDFFF) {
      fail_at(escape_pos, "unpaired low surrogate \\u" + std::string(text_.substr(pos_ - 4, 4)));
    }
    if (code_point >= 0xD800 && code_point <= 0xDBFF) {
      if (text_.substr(pos_, 2) != "\\u") {
        fail_at(escape_pos, "high surrogate \\u" + std::string(text_.substr(pos_ - 4, 4)) +
                                " not followed by a \\u low surrogate");
      }
      pos_ += 2;
      const uint32_t low = parse_hex4();
      if (low < 0xDC00 || low > 0xDFFF) {
        fail_at(escape_pos, "high surrogate \\u" + std::string(text_.substr(pos_ - 10, 4)) +
                                " followed by \\u" + std::string(text_.substr(pos_ - 4, 4)) +
                                ", not a low surrogate");
      }
      code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(out, code_point);
  }

  // One UTF-8 sequence starting at pos_, validated (no overlong forms, no
  // surrogates, nothing above U+10FFFF) and copied to `out`.
  void copy_utf8(std::string& out) {
    const auto lead = static_cast<unsigned char>(text_[pos_]);
    int length;
    uint32_t code_point, minimum;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2, code_point = lead & 0x1F, minimum = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3, code_point = lead & 0x0F, minimum = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4, code_point = lead & 0x07, minimum = 0x10000;
    } else {
      fail("invalid UTF-8 (" + describe(pos_) + ") inside a string");
    }
    for (int i = 1; i < length; ++i) {
      if (pos_ + i >= text_.size() ||
          (static_cast<unsigned char>(text_[pos_ + i]) & 0xC0) != 0x80) {
        fail("invalid UTF-8 (truncated sequence starting with " + describe(pos_) +
             ") inside a string");
      }
      code_point = (code_point << 6) | (static_cast<unsigned char>(text_[pos_ + i]) & 0x3F);
    }
    if (code_point < minimum || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      fail("invalid UTF-8 (overlong form, surrogate or beyond U+10FFFF) inside a string");
    }
    out.append(text_.substr(pos_, length));
    pos_ += length;
  }

  std::string parse_string() {
    const size_t start = pos_;
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (at_end()) fail_at(start, "unterminated string");
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c == '\\') {
        parse_escape(out);
      } else if (c < 0x20) {
        fail("control character " + hex_byte(c) + " inside a string (escape it, e.g. \\n)");
      } else if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
      } else {
        copy_utf8(out);
      }
    }
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  size_t skip_digits() {
    const size_t start = pos_;
    while (!at_end() && is_digit(text_[pos_])) ++pos_;
    return pos_ - start;
  }

  Value parse_number() {
    const size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    if (at_end() || !is_digit(text_[pos_]))
      fail("expected a digit after '-', got " + describe(pos_));
    const size_t int_start = pos_;
    if (text_[pos_] == '0') {
      ++pos_;
      if (!at_end() && is_digit(text_[pos_])) fail_at(int_start, "leading zero in a number");
    } else {
      skip_digits();
    }
    const size_t int_end = pos_;
    bool integer_literal = true;
    size_t frac_start = pos_, frac_end = pos_;
    if (peek() == '.' && !at_end()) {
      integer_literal = false;
      ++pos_;
      frac_start = pos_;
      if (skip_digits() == 0) fail("expected a digit after '.', got " + describe(pos_));
      frac_end = pos_;
    }
    long exponent = 0;
    if (!at_end() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      integer_literal = false;
      ++pos_;
      bool negative = false;
      if (!at_end() && (text_[pos_] == '+' || text_[pos_] == '-')) negative = text_[pos_++] == '-';
      const size_t exp_start = pos_;
      if (skip_digits() == 0) fail("expected a digit in the exponent, got " + describe(pos_));
      for (size_t i = exp_start; i < pos_ && exponent < 100000; ++i) {
        exponent = exponent * 10 + (text_[i] - '0');
      }
      if (negative) exponent = -exponent;
    }
    const std::string_view literal = text_.substr(start, pos_ - start);

    Value value;
    Value::Number number{0.0, std::nullopt};
    const auto [end, error] =
        std::from_chars(literal.data(), literal.data() + literal.size(), number.value);
    if (error == std::errc::result_out_of_range) {
      // Tell overflow from underflow by the position of the first nonzero digit.
      long magnitude = 0;
      const std::string_view int_digits = text_.substr(int_start, int_end - int_start);
      const std::string_view frac_digits = text_.substr(frac_start, frac_end - frac_start);
      if (int_digits != "0") {
        magnitude = static_cast<long>(int_digits.size()) + exponent;
      } else {
        const size_t first = frac_digits.find_first_not_of('0');
        magnitude = -static_cast<long>(first) + exponent;
      }
      if (magnitude > 0) fail_at(start, "number " + std::string(literal) + " is out of range");
      number.value = literal[0] == '-' ? -0.0 : 0.0;
    } else if (error != std::errc() || end != literal.data() + literal.size()) {
      fail_at(start, "malformed number " + std::string(literal));
    }
    if (integer_literal) {
      int64_t exact = 0;
      const auto [int_end_ptr, int_error] =
          std::from_chars(literal.data(), literal.data() + literal.size(), exact);
      if (int_error == std::errc() && int_end_ptr == literal.data() + literal.size()) {
        number.exact = exact;
      }
    } else {
      number.exact = integral_value(number.value);
    }
    value.data_ = number;
    return value;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

Value parse(std::string_view text) { return Parser(text).parse_document(); }

Value parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot open JSON file " + path + ": " + std::strerror(errno));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string text = contents.str();
  // A UTF-8 byte order mark is not JSON, but editors write one; RFC 8259
  // allows a parser to ignore it.
  std::string_view view(text);
  if (view.substr(0, 3) == "\xEF\xBB\xBF") view.remove_prefix(3);
  try {
    return parse(view);
  } catch (const ParseError& e) {
    throw ParseError(path + ": " + e.what(), e.line(), e.column());
  }
}

// ---------------------------------------------------------------- Serializer

namespace {

void write_string(std::string& out, const std::string& s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static const char* digits = "0123456789abcdef";
          out += "\\u00";
          out += digits[c >> 4];
          out += digits[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void newline(std::string& out, int indent, int level) {
  out += '\n';
  out.append(static_cast<size_t>(indent) * level, ' ');
}

}  // namespace

// Free function with access through the public API only.
static void write_value(std::string& out, const Value& value, int indent, int level);

static void write_number(std::string& out, const Value& value) {
  char buffer[64];
  if (value.is_integer()) {
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value.as_int());
    out.append(buffer, result.ptr);
    return;
  }
  const double d = value.as_double();
  if (!std::isfinite(d)) {
    throw std::runtime_error("cannot write " + std::string(std::isnan(d) ? "NaN" : "infinity") +
                             " as JSON (JSON numbers must be finite): check the value before "
                             "writing it, or write it as null or a string");
  }
  // Shortest text that reads back as the same double.
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, d);
  out.append(buffer, result.ptr);
}

static void write_value(std::string& out, const Value& value, int indent, int level) {
  switch (value.type()) {
    case Type::null: out += "null"; return;
    case Type::boolean: out += value.as_bool() ? "true" : "false"; return;
    case Type::number: write_number(out, value); return;
    case Type::string: write_string(out, value.as_string()); return;
    case Type::array: {
      const Array& elements = value.as_array();
      if (elements.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < elements.size(); ++i) {
        if (i > 0) out += ',';
        if (indent >= 0) newline(out, indent, level + 1);
        write_value(out, elements[i], indent, level + 1);
      }
      if (indent >= 0) newline(out, indent, level);
      out += ']';
      return;
    }
    case Type::object: {
      const Object& members = value.as_object();
      if (members.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < members.size(); ++i) {
        if (i > 0) out += ',';
        if (indent >= 0) newline(out, indent, level + 1);
        write_string(out, members[i].first);
        out += indent >= 0 ? ": " : ":";
        write_value(out, members[i].second, indent, level + 1);
      }
      if (indent >= 0) newline(out, indent, level);
      out += '}';
      return;
    }
  }
}

std::string Value::dump(int indent) const {
  std::string out;
  write_value(out, *this, indent, 0);
  return out;
}

}  // namespace cleave::json
