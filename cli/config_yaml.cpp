#include "cli/config_yaml.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "util/closest_name.h"

namespace cleave::cli {
namespace {

// Where a value came from, for messages: the file and line, or the --set.
class Origin {
 public:
  explicit Origin(std::string source) : source_(std::move(source)) {}
  void add_override(const Override& o) { overrides_[o.path] = o.path + "=" + o.value; }

  std::string where(const std::string& path, const YAML::Node& node) const {
    for (const auto& [set_path, text] : overrides_) {
      if (path == set_path || path.rfind(set_path + ".", 0) == 0) return "--set " + text;
    }
    if (node.IsDefined() && node.Mark().line >= 0) {
      return source_ + ":" + std::to_string(node.Mark().line + 1);
    }
    return source_;
  }

 private:
  std::string source_;
  std::map<std::string, std::string> overrides_;
};

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "nothing (null)";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Scalar:
      return node.Tag() == "!" ? "the quoted string \"" + node.Scalar() + "\""
                               : "'" + node.Scalar() + "'";
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

bool is_plain_scalar(const YAML::Node& node) { return node.IsScalar() && node.Tag() != "!"; }

bool parse_int(const std::string& text, int64_t& value) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  value = v;
  return true;
}

bool parse_double(const std::string& text, double& value) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v)) return false;
  value = v;
  return true;
}

// Collects the keys a visit declares, for the unknown-key check.
class KeyCollector : public Fields {
 public:
  std::vector<std::string> keys;
  void field(const std::string& k, int64_t&) override { keys.push_back(k); }
  void field(const std::string& k, double&) override { keys.push_back(k); }
  void field(const std::string& k, bool&) override { keys.push_back(k); }
  void field(const std::string& k, std::string&) override { keys.push_back(k); }
  void field(const std::string& k, std::vector<std::string>&) override { keys.push_back(k); }
  void field(const std::string& k, std::vector<int64_t>&) override { keys.push_back(k); }
  void choice(const std::string& k, std::string&, const std::vector<std::string>&) override {
    keys.push_back(k);
  }
  void section(const std::string& k, const std::function<void(Fields&)>&) override {
    keys.push_back(k);
  }
};

class YamlReader : public Fields {
 public:
  YamlReader(YAML::Node node, std::string prefix, const Origin& origin)
      : node_(std::move(node)), prefix_(std::move(prefix)), origin_(origin) {}

  // Every key of this mapping must be one `visit` declares.
  void check_keys(const std::function<void(Fields&)>& visit) const {
    if (!node_.IsDefined() || !node_.IsMap()) return;
    KeyCollector known;
    visit(known);
    std::set<std::string> seen;
    for (const auto& member : node_) {
      const std::string key = member.first.Scalar();
      // yaml-cpp keeps one of two equal keys silently; a repeated key is
      // almost always an edit gone wrong.
      if (!seen.insert(key).second) {
        throw ConfigError(origin_.where(prefix_ + key, member.first) + ": key '" + prefix_ + key +
                          "' appears twice: keep one");
      }
      if (std::find(known.keys.begin(), known.keys.end(), key) != known.keys.end()) continue;
      std::string message = origin_.where(prefix_ + key, member.first) + ": unknown key '" +
                            prefix_ + key + "'";
      const std::string suggestion = closest_name(key, known.keys);
      if (!suggestion.empty()) {
        message += " (did you mean '" + prefix_ + suggestion + "'?)";
      } else {
        message += " (valid keys" + std::string(prefix_.empty() ? "" : " under '" +
                   prefix_.substr(0, prefix_.size() - 1) + "'") + ":";
        for (size_t i = 0; i < known.keys.size(); ++i) {
          message += (i ? ", " : " ") + known.keys[i];
        }
        message += ")";
      }
      throw ConfigError(message);
    }
  }

  void field(const std::string& key, int64_t& value) override {
    const YAML::Node n = get(key);
    if (!n.IsDefined()) return;
    if (!is_plain_scalar(n) || !parse_int(n.Scalar(), value)) type_error(key, n, "an integer");
  }
  void field(const std::string& key, double& value) override {
    const YAML::Node n = get(key);
    if (!n.IsDefined()) return;
    if (!is_plain_scalar(n) || !parse_double(n.Scalar(), value)) type_error(key, n, "a number");
  }
  void field(const std::string& key, bool& value) override {
    const YAML::Node n = get(key);
    if (!n.IsDefined()) return;
    if (!is_plain_scalar(n) || !YAML::convert<bool>::decode(n, value)) {
      type_error(key, n, "a boolean (true or false)");
    }
  }
  void field(const std::string& key, std::string& value) override {
    const YAML::Node n = get(key);
    if (!n.IsDefined()) return;
    if (n.IsNull()) {
      value.clear();
    } else if (n.IsScalar()) {
      value = n.Scalar();
    } else {
      type_error(key, n, "a string");
    }
  }
  void field(const std::string& key, std::vector<std::string>& value) override {
    read_list(key, value, "a list of strings", [](const YAML::Node& item, std::string& out) {
      if (!item.IsScalar()) return false;
      out = item.Scalar();
      return true;
    });
  }
  void field(const std::string& key, std::vector<int64_t>& value) override {
    read_list(key, value, "a list of integers", [](const YAML::Node& item, int64_t& out) {
      return is_plain_scalar(item) && parse_int(item.Scalar(), out);
    });
  }
  void choice(const std::string& key, std::string& value,
              const std::vector<std::string>& names) override {
    const YAML::Node n = get(key);
    if (!n.IsDefined()) return;
    std::string expected = "one of";
    for (size_t i = 0; i < names.size(); ++i) expected += (i ? ", " : " ") + names[i];
    if (!n.IsScalar() || std::find(names.begin(), names.end(), n.Scalar()) == names.end()) {
      type_error(key, n, expected);
    }
    value = n.Scalar();
  }
  void section(const std::string& key, const std::function<void(Fields&)>& visit) override {
    YAML::Node n = get(key);
    if (n.IsDefined() && !n.IsNull() && !n.IsMap()) type_error(key, n, "a mapping of keys");
    if (n.IsDefined() && n.IsNull()) n = YAML::Node();  // "lora:" alone: all defaults
    YamlReader child(n, prefix_ + key + ".", origin_);
    child.check_keys(visit);
    visit(child);
  }

 private:
  YAML::Node get(const std::string& key) const {
    if (!node_.IsDefined() || !node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& map = node_;
    return map[key];
  }

  [[noreturn]] void type_error(const std::string& key, const YAML::Node& n,
                               const std::string& expected) const {
    throw ConfigError(origin_.where(prefix_ + key, n) + ": " + prefix_ + key + ": expected " +
                      expected + ", got " + describe(n));
  }

  template <typename T, typename ReadItem>
  void read_list(const std::string& key, std::vector<T>& value, const std::string& expected,
                 ReadItem read_item) {
    const YAML::Node n = get(key);
    if (!n.IsDefined()) return;
    if (n.IsNull()) {
      value.clear();
      return;
    }
    if (!n.IsSequence()) type_error(key, n, expected);
    std::vector<T> items;
    for (size_t i = 0; i < n.size(); ++i) {
      T item{};
      if (!read_item(n[i], item)) {
        throw ConfigError(origin_.where(prefix_ + key, n[i]) + ": " + prefix_ + key + "[" +
                          std::to_string(i) + "]: expected " + expected + ", got " +
                          describe(n[i]));
      }
      items.push_back(item);
    }
    value = std::move(items);
  }

  YAML::Node node_;  // a mapping, or undefined when the section is absent
  std::string prefix_;
  const Origin& origin_;
};

// The shortest %g form that reads back as the same double.
std::string shortest_double(double value) {
  char buf[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  std::string text = buf;
  // Keep it a float in YAML's eyes ("1" would read back as an integer, which
  // our reader accepts, but "1.0" says what it is).
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

class YamlWriter : public Fields {
 public:
  explicit YamlWriter(YAML::Emitter& out) : out_(out) {}
  void field(const std::string& k, int64_t& v) override {
    out_ << YAML::Key << k << YAML::Value << static_cast<long long>(v);
  }
  void field(const std::string& k, double& v) override {
    // Written as a plain (unquoted) scalar: the emitter would quote a string.
    out_ << YAML::Key << k << YAML::Value << YAML::Node(YAML::Load(shortest_double(v)));
  }
  void field(const std::string& k, bool& v) override {
    out_ << YAML::Key << k << YAML::Value << v;
  }
  void field(const std::string& k, std::string& v) override {
    out_ << YAML::Key << k << YAML::Value << YAML::DoubleQuoted << v;
  }
  void field(const std::string& k, std::vector<std::string>& v) override {
    out_ << YAML::Key << k << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const std::string& s : v) out_ << s;
    out_ << YAML::EndSeq;
  }
  void field(const std::string& k, std::vector<int64_t>& v) override {
    out_ << YAML::Key << k << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (int64_t i : v) out_ << static_cast<long long>(i);
    out_ << YAML::EndSeq;
  }
  void choice(const std::string& k, std::string& v, const std::vector<std::string>&) override {
    out_ << YAML::Key << k << YAML::Value << v;
  }
  void section(const std::string& k, const std::function<void(Fields&)>& visit) override {
    out_ << YAML::Key << k << YAML::Value << YAML::BeginMap;
    visit(*this);
    out_ << YAML::EndMap;
  }

 private:
  YAML::Emitter& out_;
};

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

void apply_override(YAML::Node& root, const Override& o) {
  YAML::Node value;
  try {
    value = YAML::Load(o.value);
  } catch (const YAML::Exception& e) {
    throw ConfigError("--set " + o.path + "=" + o.value + ": the value is not valid YAML: " +
                      e.msg);
  }
  const std::vector<std::string> parts = split_path(o.path);
  for (const std::string& part : parts) {
    if (part.empty()) throw ConfigError("--set " + o.path + ": empty key in the dotted path");
  }
  // Node assignment in yaml-cpp rebinds only through reset(); operator= would
  // overwrite the node it refers to.
  YAML::Node current;
  current.reset(root);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next;
    next.reset(current[parts[i]]);
    if (!next.IsMap()) {
      current[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next.reset(current[parts[i]]);
    }
    current.reset(next);
  }
  current[parts.back()] = value;
}

}  // namespace

void read_yaml(const std::string& yaml_text, const std::string& source,
               const std::vector<Override>& overrides,
               const std::function<void(Fields&)>& visit_root) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ":" +
                      std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg);
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) {
    throw ConfigError(source + ": expected a mapping of keys and sections at the top level, got " +
                      describe(root));
  }
  Origin origin(source);
  for (const Override& o : overrides) {
    apply_override(root, o);
    origin.add_override(o);
  }
  YamlReader reader(root, "", origin);
  reader.check_keys(visit_root);
  visit_root(reader);
}

std::string write_yaml(const std::function<void(Fields&)>& visit_root) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  YamlWriter writer(out);
  visit_root(writer);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string read_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read the configuration file (does it exist?)");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

uint64_t checked_train_seed(int64_t seed, const std::string& source) {
  if (seed < 0) throw ConfigError(source + ": train.seed must be >= 0, got " + std::to_string(seed));
  return static_cast<uint64_t>(seed);
}

}  // namespace cleave::cli
