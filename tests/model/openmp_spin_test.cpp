#include "model/openmp_spin.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/shared_data.h"

namespace cleave {
namespace {

// Runs `body` in a forked child and returns its exit status.
template <typename Body>
int in_child(Body body) {
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(OpenmpSpin, ReexecutesWithTheSpinCountWhenNoneIsSet) {
  const std::string out = test::scratch_dir("openmp_spin") + "/spin.txt";
  const std::string script = "printf %s \"$GOMP_SPINCOUNT\" > '" + out + "'";
  const int status = in_child([&] {
    unsetenv("GOMP_SPINCOUNT");
    unsetenv("OMP_WAIT_POLICY");
    char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"),
                    const_cast<char*>(script.c_str()), nullptr};
    settle_openmp_spin(argv, "/bin/sh");
    _exit(99);  // only reached when the exec did not happen
  });
  EXPECT_EQ(status, 0);
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), kOpenmpSpinCount);
}

TEST(OpenmpSpin, KeepsAUsersOwnSetting) {
  for (const char* name : {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"}) {
    const int status = in_child([&] {
      unsetenv("GOMP_SPINCOUNT");
      unsetenv("OMP_WAIT_POLICY");
      setenv(name, name[0] == 'G' ? "5" : "ACTIVE", 1);
      char* argv[] = {const_cast<char*>("false"), nullptr};
      settle_openmp_spin(argv, "/bin/false");
      _exit(std::string(std::getenv(name)) == (name[0] == 'G' ? "5" : "ACTIVE") ? 42 : 43);
    });
    EXPECT_EQ(status, 42) << name;
  }
}

}  // namespace
}  // namespace cleave
