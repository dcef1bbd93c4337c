#include "tests/support/shared_data.h"

#include <cstdlib>
#include <filesystem>

#include <unistd.h>

namespace fs = std::filesystem;

namespace cleave::test {

std::optional<std::string> shared_file(const std::string& relative) {
  const char* env = std::getenv("CLEAVE_SHARED");
  const fs::path root = env && *env ? fs::path(env) : fs::path(CLEAVE_SHARED_DIR);
  const fs::path path = root / relative;
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  return fs::weakly_canonical(path).string();
}

std::string scratch_dir(const std::string& test_name) {
  // ctest runs every test case in its own process, several at once: the pid
  // keeps two processes of the same fixture out of each other's files.
  const fs::path dir = fs::path(CLEAVE_BINARY_DIR) / "test-scratch" /
                       (test_name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

}  // namespace cleave::test
