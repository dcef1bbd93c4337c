#include "model/openmp_spin.h"

#include <unistd.h>

#include <cstdlib>

namespace cleave {

void settle_openmp_spin(char** argv, const std::string& executable) {
  if (std::getenv("GOMP_SPINCOUNT") != nullptr || std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  // Set before the exec, so the new image finds it and returns at once.
  setenv("GOMP_SPINCOUNT", kOpenmpSpinCount, /*overwrite=*/1);
  execv(executable.c_str(), argv);
}

}  // namespace cleave
