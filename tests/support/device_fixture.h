// Helpers for the device and mixed-precision tests (CPU and *_gpu_test.cpp):
// deterministic batches and adapters, and the error measure their
// tolerances are stated in. Header-only: only LibTorch tests include it.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <string>

#include "client/batching.h"
#include "lora/adapter_set.h"
#include "tests/support/tiny_model.h"

namespace cleave::test::device {

// A [B, T] batch of random tokens, every target scored except column 0.
inline data::Batch random_batch(int64_t vocab, int64_t B, int64_t T, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor ids = at::randint(vocab, {B, T + 1}, gen, at::kInt).contiguous();  // [B, T + 1]
  data::Batch batch;
  batch.batch_size = B;
  batch.seq_len = T;
  const int32_t* p = ids.data_ptr<int32_t>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      batch.inputs.push_back(p[b * (T + 1) + t]);
      batch.targets.push_back(p[b * (T + 1) + t + 1]);
      batch.weights.push_back(t == 0 ? 0.0f : 1.0f);
      batch.n_target_tokens += t == 0 ? 0 : 1;
    }
  }
  return batch;
}

// B = 0 (LoRA's init) would leave A's gradient zero: give B random values,
// drawn on the CPU so every device gets the same ones.
inline void randomize_b(lora::AdapterSet& set, uint64_t seed) {
  at::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& [name, pair] : set.pairs()) {
    pair.b.copy_(at::empty(pair.b.sizes(), at::kFloat).normal_(0.0, 0.01, gen));
  }
}

// max |a - b| / max |b|, computed on the CPU in float32.
inline double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.detach().to(at::kCPU, at::kFloat), y = b.detach().to(at::kCPU, at::kFloat);
  const double scale = std::max(y.abs().max().item<double>(), 1e-30);
  return (x - y).abs().max().item<double>() / scale;
}

// ||a - b|| / ||b|| (Frobenius), on the CPU in float64: for gradients, whose
// largest entries say little about the rest.
inline double relative_norm_error(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.detach().to(at::kCPU, at::kDouble), y = b.detach().to(at::kCPU, at::kDouble);
  return (x - y).norm().item<double>() / std::max(y.norm().item<double>(), 1e-300);
}

// The GPU tests compare devices, which needs no trained weights: they use
// stories260K where ../shared has it and otherwise a random model of its
// shape, so they also run on a GPU machine without the shared folder.
inline std::string stories260k_or_standin(const std::string& test_name) {
  if (auto path = shared_file("models/stories260K.gguf")) return *path;
  LlamaConfig c = tiny_config();
  c.vocab_size = 512;
  c.dim = 64;
  c.n_layers = 5;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.rope_dims = 8;
  c.ffn_dim = 172;
  c.context_length = 512;
  std::cerr << "stories260K.gguf not found (set CLEAVE_SHARED): using a random model of its shape\n";
  return write_tiny_model(test_name, 1, c);
}

}  // namespace cleave::test::device
