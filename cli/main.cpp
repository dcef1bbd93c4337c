// The `cleave` binary: every subcommand is in cli/; this only hands over argv.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "model/openmp_spin.h"
#include "model/tensor_allocator.h"

int main(int argc, char** argv) {
  cleave::settle_openmp_spin(argv);     // may re-execute this program once, with GOMP_SPINCOUNT set
  // Before the first tensor: peak memory follows what tensors need. glibc's
  // heap took 36-52% more peak memory on the 110M benchmark step and was no
  // faster (README, "CPU speed"); CLEAVE_TENSOR_ALLOCATOR=libtorch keeps it.
  const char* allocator = std::getenv("CLEAVE_TENSOR_ALLOCATOR");
  if (allocator == nullptr || std::string(allocator) != "libtorch") cleave::install_tensor_allocator();
  const std::vector<std::string> args(argv + 1, argv + argc);
  const int status = cleave::cli::run_main(args, std::cerr);
  std::cout.flush();
  return status;
}
