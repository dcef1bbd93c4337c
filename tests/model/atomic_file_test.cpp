#include "model/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "tests/support/shared_data.h"

namespace cleave {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(AtomicFile, CommitReplacesTheFileAndLeavesNoTemporary) {
  const std::string path = test::scratch_dir("atomic_file_commit") + "/state.json";
  write_file_atomically(path, "old");
  write_file_atomically(path, "new contents");
  EXPECT_EQ(read_all(path), "new contents");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(AtomicFile, WithoutCommitTheOldFileStaysAndTheTemporaryGoes) {
  const std::string path = test::scratch_dir("atomic_file_abandon") + "/state.json";
  write_file_atomically(path, "old");
  {
    AtomicFile file(path);
    file.write("half", 4);
  }   // an exception on the way: no commit()
  EXPECT_EQ(read_all(path), "old");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(AtomicFile, AMissingDirectoryIsAnErrorNamingTheFile) {
  const std::string path = test::scratch_dir("atomic_file_missing") + "/no/such/dir/state.json";
  try {
    write_file_atomically(path, "x");
    FAIL() << "wrote into a missing directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("state.json.tmp"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cleave
