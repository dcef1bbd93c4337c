// How a configuration section is described: one function per section calls
// `field` for each of its keys. The same function drives reading (checked,
// from YAML, see config_yaml.cpp), key listing (for "unknown key" errors) and
// writing (config.resolved.yaml), so adding a section is writing one function.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace cleave::cli {

class Fields {
 public:
  virtual ~Fields() = default;
  // A key absent from the file leaves `value` (the default) as it is.
  virtual void field(const std::string& key, int64_t& value) = 0;
  virtual void field(const std::string& key, double& value) = 0;
  virtual void field(const std::string& key, bool& value) = 0;
  virtual void field(const std::string& key, std::string& value) = 0;
  virtual void field(const std::string& key, std::vector<std::string>& value) = 0;
  virtual void field(const std::string& key, std::vector<int64_t>& value) = 0;
  // A string that must be one of `names`.
  virtual void choice(const std::string& key, std::string& value,
                      const std::vector<std::string>& names) = 0;
  // A nested mapping whose keys `visit` declares.
  virtual void section(const std::string& key, const std::function<void(Fields&)>& visit) = 0;

  // An enum through its names.
  template <typename Enum>
  void choice(const std::string& key, Enum& value,
              const std::vector<std::pair<std::string, Enum>>& names) {
    std::string name;
    std::vector<std::string> all;
    for (const auto& [n, v] : names) {
      all.push_back(n);
      if (v == value) name = n;
    }
    choice(key, name, all);
    for (const auto& [n, v] : names) {
      if (n == name) value = v;
    }
  }
};

}  // namespace cleave::cli
