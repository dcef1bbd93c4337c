#include "util/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

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

mode_t mode_of(const std::string& path) {
  struct stat info;
  if (::lstat(path.c_str(), &info) != 0) throw std::runtime_error(path + " does not exist");
  return info.st_mode & 07777;
}

// Sets the process umask for one test and restores it.
class Umask {
 public:
  explicit Umask(mode_t mask) : old_(::umask(mask)) {}
  ~Umask() { ::umask(old_); }

 private:
  mode_t old_;
};

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

TEST(AtomicFile, AStaleTemporaryFromACrashIsReplaced) {
  const std::string path = test::scratch_dir("atomic_file_stale") + "/state.json";
  std::ofstream(path + ".tmp") << "left by a crash";
  write_file_atomically(path, "whole");
  EXPECT_EQ(read_all(path), "whole");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(AtomicFile, AModeIsExactFromCreationWhateverTheUmask) {
  const std::string dir = test::scratch_dir("atomic_file_mode");
  {
    const Umask permissive(0);
    AtomicFile key(dir + "/key.pem", {0600});
    // While it is written: already 0600, never readable by others.
    EXPECT_EQ(mode_of(dir + "/key.pem.tmp"), 0600u);
    key.write("secret", 6);
    key.commit();
    EXPECT_EQ(mode_of(dir + "/key.pem"), 0600u);
  }
  {
    const Umask strict(077);
    write_file_atomically(dir + "/cert.pem", "public", {0644});
    EXPECT_EQ(mode_of(dir + "/cert.pem"), 0644u);   // the umask does not narrow it
    write_file_atomically(dir + "/default.txt", "x");
    EXPECT_EQ(mode_of(dir + "/default.txt"), 0600u);  // without a mode: 0666 less the umask
  }
  // Replacing a file gives the new one the requested mode, not the old one's.
  write_file_atomically(dir + "/cert.pem", "private now", {0600});
  EXPECT_EQ(mode_of(dir + "/cert.pem"), 0600u);
}

TEST(AtomicFile, WithoutOverwriteAnExistingFileIsRefusedAndKept) {
  const std::string dir = test::scratch_dir("atomic_file_no_overwrite");
  AtomicFileOptions keep;
  keep.overwrite = false;
  write_file_atomically(dir + "/ca.key", "first", keep);
  EXPECT_EQ(read_all(dir + "/ca.key"), "first");
  try {
    write_file_atomically(dir + "/ca.key", "second", keep);
    FAIL() << "overwrote an existing file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ca.key already exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_all(dir + "/ca.key"), "first");

  // A file that appears while the new one is written is not replaced either.
  AtomicFile late(dir + "/late.key", keep);
  late.write("mine", 4);
  std::ofstream(dir + "/late.key") << "theirs";
  EXPECT_THROW(late.commit(), std::runtime_error);
  EXPECT_EQ(read_all(dir + "/late.key"), "theirs");
  EXPECT_FALSE(std::filesystem::exists(dir + "/late.key.tmp"));

  // Nor is a symbolic link followed.
  std::filesystem::create_symlink(dir + "/nowhere", dir + "/link.key");
  EXPECT_THROW(write_file_atomically(dir + "/link.key", "x", keep), std::runtime_error);
  EXPECT_FALSE(std::filesystem::exists(dir + "/nowhere"));
}

TEST(AtomicFile, WithoutDurabilityTheFileIsStillWholeAndAtomic) {
  const std::string path = test::scratch_dir("atomic_file_not_durable") + "/throwaway.crl";
  AtomicFileOptions quick;
  quick.durable = false;
  write_file_atomically(path, "old", quick);
  write_file_atomically(path, "new", quick);
  EXPECT_EQ(read_all(path), "new");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

}  // namespace
}  // namespace cleave
