// A process's resident memory as /proc reports it, for tests that bound what
// a flood or a long run leaves behind.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace cleave::test {

// VmRSS of /proc/<process>/status in KiB ("self" or a pid), -1 once it is gone.
inline int64_t resident_kib(const std::string& process = "self") {
  std::ifstream status("/proc/" + process + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

}  // namespace cleave::test
