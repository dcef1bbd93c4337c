// Locating ../shared for tests that need the real model and data.
#pragma once

#include <optional>
#include <string>

namespace cleave::test {

// Absolute path of `relative` under the shared folder (CLEAVE_SHARED env var,
// else ../shared beside the checkout), or nullopt if the file is absent.
std::optional<std::string> shared_file(const std::string& relative);

// A fresh, empty directory under the build tree for one test's files, private
// to this process.
std::string scratch_dir(const std::string& test_name);

}  // namespace cleave::test

// Skips the current test, saying what it needs, when a shared file is absent.
#define CLEAVE_REQUIRE_SHARED(var, relative)                                     \
  const auto var##_opt = ::cleave::test::shared_file(relative);                  \
  if (!var##_opt) {                                                              \
    GTEST_SKIP() << "needs ../shared/" << (relative)                             \
                 << " (set CLEAVE_SHARED to the shared folder to run this test)"; \
  }                                                                              \
  const std::string var = *var##_opt
