// The arithmetic of the frozen base's matmuls on the CPU when activations are
// float32 (config `runtime.matmul`). bf16 rounds both operands to bfloat16
// and lets oneDNN multiply them with float32 accumulation, like PyTorch's CPU
// autocast: on CPUs with bf16 dot products (AVX512_BF16, AMX) that runs at
// about twice the float32 sgemm rate (BENCHMARKS.md). Activations, norms,
// attention, LoRA adapters, the loss and the optimizer stay float32; only the
// products with frozen weights (and their input gradients) go through bf16.
// int8 multiplies int8 frozen weights (base.quant int8) on their codes, with
// activations and gradients rounded to int8 per row (model/int8_matmul.h):
// 1.3-2x bf16's rate where the CPU has int8 dot products (VNNI; BENCHMARKS.md), at
// about 0.8% relative error per product against bf16's 0.3%. The other
// weights (float, q4, ggml blocks) keep bf16 in that mode.
#pragma once

#include <string>

namespace cleave {

enum class CpuMatmul { float32, bf16, int8 };

// For the whole process; float32 unless set (tests and eval rely on that).
void set_cpu_matmul(CpuMatmul matmul);
// set_cpu_matmul, and for bf16 and int8 OpenBLAS's own thread pool down to one thread
// (back to LibTorch's thread count for float32): the large products then run
// in oneDNN on LibTorch's OpenMP threads, and OpenBLAS's pthreads, which spin
// on sched_yield between calls, only took cores from them for the small
// float32 products left (LoRA, attention). What the commands call.
void use_cpu_matmul(CpuMatmul matmul);
CpuMatmul cpu_matmul();
const char* to_string(CpuMatmul matmul);

// Whether this CPU multiplies bf16 natively (AVX512_BF16 or AMX-BF16) and
// LibTorch was built with oneDNN, which is what makes bf16 pay off.
bool cpu_has_native_bf16();

// "float32" | "bf16" | "int8" | "auto" (bf16 where cpu_has_native_bf16(),
// float32 elsewhere; auto never picks int8, whose rounding is coarser).
// Throws std::invalid_argument listing the names, or for int8 in a build
// without oneDNN, saying what to install.
CpuMatmul resolve_cpu_matmul(const std::string& name);

// One line for a run's header: "frozen matmuls: bf16 (auto: avx512_bf16)".
std::string describe_cpu_matmul(const std::string& requested);

}  // namespace cleave
