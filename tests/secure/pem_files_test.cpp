// The PEM files' modes and overwrite rules, which the federation relies on:
// private keys are 0600 from the moment they exist, whatever the umask.
#include "secure/pem_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "tests/support/shared_data.h"

namespace cleave::secure {
namespace {

mode_t mode_of(const std::string& path) {
  struct stat info;
  if (::lstat(path.c_str(), &info) != 0) throw std::runtime_error(path + " does not exist");
  return info.st_mode & 07777;
}

class PemFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("pem_files");
    old_umask_ = ::umask(0);  // the most permissive: the mode alone must keep keys private
  }
  void TearDown() override { ::umask(old_umask_); }
  std::string dir_;
  mode_t old_umask_ = 022;
};

TEST_F(PemFilesTest, PrivateKeysArePrivateAndPublicFilesReadable) {
  write_file(dir_ + "/node.key", "key", kPrivateFileMode, /*overwrite=*/false);
  write_file(dir_ + "/node.crt", "cert", kPublicFileMode, /*overwrite=*/false);
  EXPECT_EQ(mode_of(dir_ + "/node.key"), 0600u);
  EXPECT_EQ(mode_of(dir_ + "/node.crt"), 0644u);
  EXPECT_EQ(read_file(dir_ + "/node.key"), "key");

  ::umask(077);   // nor does a strict umask hide a certificate
  write_file(dir_ + "/ca.crl", "crl", kPublicFileMode, /*overwrite=*/true, /*durable=*/false);
  EXPECT_EQ(mode_of(dir_ + "/ca.crl"), 0644u);
}

TEST_F(PemFilesTest, WithoutOverwriteAnExistingFileIsRefusedAndKept) {
  write_file(dir_ + "/ca.key", "first", kPrivateFileMode, /*overwrite=*/false);
  EXPECT_THROW(write_file(dir_ + "/ca.key", "second", kPrivateFileMode, /*overwrite=*/false),
               std::runtime_error);
  EXPECT_EQ(read_file(dir_ + "/ca.key"), "first");

  write_file(dir_ + "/ca.key", "second", kPrivateFileMode, /*overwrite=*/true);
  EXPECT_EQ(read_file(dir_ + "/ca.key"), "second");
  EXPECT_EQ(mode_of(dir_ + "/ca.key"), 0600u);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/ca.key.tmp"));
}

TEST_F(PemFilesTest, ReplacingAPublicFileWithAKeyNarrowsItsMode) {
  write_file(dir_ + "/x.pem", "public", kPublicFileMode, /*overwrite=*/false);
  write_file(dir_ + "/x.pem", "private", kPrivateFileMode, /*overwrite=*/true);
  EXPECT_EQ(mode_of(dir_ + "/x.pem"), 0600u);
}

}  // namespace
}  // namespace cleave::secure
