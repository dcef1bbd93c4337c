// Where CPU tensor buffers come from.
//
// LibTorch allocates CPU tensors with posix_memalign, i.e. from glibc's heap.
// glibc raises its mmap threshold (up to 32 MiB) after the first large free,
// so from then on activations and dequantized weights live in the heap
// arenas, and what a step frees stays resident (only the top of a heap is
// ever given back). On the 110M benchmark model with a q4 base a training
// step peaked at 614 MiB resident with at most 255 MiB allocated.
//
// install_tensor_allocator() gives every CPU tensor buffer of at least
// `mapped_from_bytes` its own anonymous mapping (from 2 MiB on aligned for
// transparent huge pages). When the tensor dies the mapping is kept for the
// next buffer of about its length (a training step asks for the same sizes
// every step), as long as all mappings, in use and kept, stay within the
// most bytes ever in use at once plus `cache_limit_bytes`; beyond that the
// least recently freed are unmapped. So peak resident memory stays within
// the peak of what tensors needed plus the limit (BENCHMARKS.md, "Peak RSS"),
// and what the backward pass frees is reused, not faulted in afresh. Smaller tensors and everything
// that is not a tensor (message buffers, containers) keep glibc's behaviour.
#pragma once

#include <cstddef>

namespace cleave {

struct TensorAllocatorOptions {
  // 256 KiB: one 256-token row of a 768-wide model's activations is 768 KiB,
  // so a micro-batch's activations (train.micro_batch) are mapped too; at
  // 1 MiB they came from the heap and the 110M q4 step with micro-batches
  // of one row peaked 39 MiB higher (BENCHMARKS.md, "Peak RSS").
  size_t mapped_from_bytes = size_t{256} << 10;
  // Slack above the high-water mark of tensors in use (BENCHMARKS.md,
  // "Results" and "Peak RSS").
  size_t cache_limit_bytes = size_t{32} << 20;
};

// Makes this allocator LibTorch's CPU allocator for tensors created from now
// on (call it first in main). Tensors that exist already keep their memory
// and are freed as before. Installing again changes the threshold and the
// cache limit for what follows.
void install_tensor_allocator(const TensorAllocatorOptions& options = TensorAllocatorOptions{});

// Bytes the allocator holds in mappings, in use or kept for reuse.
size_t tensor_allocator_mapped_bytes();

// Unmaps every kept mapping and restarts the high-water mark from what is in
// use now, so memory a spike needed (a long evaluation, a large batch) goes
// back to the system; returns the bytes given back.
size_t trim_tensor_cache();

}  // namespace cleave
