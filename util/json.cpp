// The JSON value type; reading and writing JSON text is in json_text.cpp.
#include "util/json.h"

#include <cmath>
#include <limits>
#include <sstream>

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

}  // namespace cleave::json
