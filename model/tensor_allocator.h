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
// every step); the most recently freed are kept up to `cache_limit_bytes`
// and older ones unmapped, so resident memory follows what is in use
// (BENCHMARKS.md, "Peak RSS"). Smaller tensors and everything
// that is not a tensor (message buffers, containers) keep glibc's behaviour.
#pragma once

#include <cstddef>

namespace cleave {

struct TensorAllocatorOptions {
  size_t mapped_from_bytes = size_t{1} << 20;
  // 128 MiB: on the 110M benchmark model a 32 MiB cache left the step 1.6x
  // slower than glibc's heap (buffers faulted in afresh); 128 MiB, reused
  // best-fit and least recently freed first out, comes within a few percent
  // of it at 30 MiB more peak RSS (BENCHMARKS.md, "Tensor allocator").
  size_t cache_limit_bytes = size_t{128} << 20;
};

// Makes this allocator LibTorch's CPU allocator for tensors created from now
// on (call it first in main). Tensors that exist already keep their memory
// and are freed as before. Installing again changes the threshold and the
// cache limit for what follows.
void install_tensor_allocator(const TensorAllocatorOptions& options = TensorAllocatorOptions{});

// Bytes the allocator holds in mappings, in use or kept for reuse.
size_t tensor_allocator_mapped_bytes();

}  // namespace cleave
