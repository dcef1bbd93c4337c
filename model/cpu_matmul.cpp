#include "model/cpu_matmul.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <atomic>
#include <stdexcept>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "model/int8_matmul.h"

namespace cleave {
namespace {

std::atomic<CpuMatmul> g_cpu_matmul{CpuMatmul::float32};

// CPUID leaf 7: sub-leaf 1 EAX bit 5 is AVX512_BF16, sub-leaf 0 EDX bit 22 AMX-BF16.
bool cpu_bf16_instructions() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool amx_bf16 = (edx >> 22) & 1u;
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  const bool avx512_bf16 = (eax >> 5) & 1u;
  return amx_bf16 || avx512_bf16;
#else
  return false;
#endif
}

}  // namespace

void set_cpu_matmul(CpuMatmul matmul) { g_cpu_matmul.store(matmul); }

void use_cpu_matmul(CpuMatmul matmul) {
  set_cpu_matmul(matmul);
  // Present when libblas.so.3 is OpenBLAS (Debian's libopenblas0-pthread).
  using SetThreads = void (*)(int);
  if (auto set_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set_threads(matmul == CpuMatmul::float32 ? at::get_num_threads() : 1);
  }
}

CpuMatmul cpu_matmul() { return g_cpu_matmul.load(); }

const char* to_string(CpuMatmul matmul) {
  switch (matmul) {
    case CpuMatmul::bf16: return "bf16";
    case CpuMatmul::int8: return "int8";
    case CpuMatmul::float32: break;
  }
  return "float32";
}

bool cpu_has_native_bf16() {
  static const bool native = cpu_bf16_instructions() && at::hasMKLDNN();
  return native;
}

CpuMatmul resolve_cpu_matmul(const std::string& name) {
  if (name == "float32") return CpuMatmul::float32;
  if (name == "bf16") return CpuMatmul::bf16;
  if (name == "int8") {
    if (!int8_products_built()) {
      throw std::invalid_argument("matmul precision 'int8' needs oneDNN, which this build lacks: install "
                                  "libdnnl-dev (scripts/setup.sh does) and rebuild");
    }
    return CpuMatmul::int8;
  }
  if (name == "auto") return cpu_has_native_bf16() ? CpuMatmul::bf16 : CpuMatmul::float32;
  throw std::invalid_argument("unknown matmul precision '" + name +
                              "': expected one of auto, float32, bf16, int8");
}

std::string describe_cpu_matmul(const std::string& requested) {
  const CpuMatmul resolved = resolve_cpu_matmul(requested);
  std::string line = std::string("frozen matmuls on the CPU: ") + to_string(resolved);
  if (resolved == CpuMatmul::int8) {
    line += cpu_has_int8_dot() ? " on int8 weights (the CPU has int8 dot products), bf16 on the others"
                               : " on int8 weights, bf16 on the others (no int8 dot products on this CPU: "
                                 "expect it slower than bf16)";
  }
  if (requested == "auto") {
    line += cpu_has_native_bf16() ? " (auto: the CPU has bf16 dot products)"
                                  : " (auto: no bf16 dot products on this CPU)";
  }
  return line;
}

}  // namespace cleave
