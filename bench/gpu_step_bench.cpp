// One LoRA fine-tuning step on a GPU (r=16 on all seven projections, bf16
// frozen base, float32 adapters and AdamW), on randomly initialised models of
// the SmolLM-135M and TinyLlama-1.1B shapes, as bench/gpu_step_hf.py does with
// HF transformers + PEFT: tokens/s and peak GPU memory (the CUDA caching
// allocator's peak allocated bytes since the model was built: weights,
// activations, adapters, optimizer state).
// Builds everywhere; without a CUDA device it says so and exits 0.
//
// Usage: gpu_step_bench --help
// Prints one JSON object per shape on stdout.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#if defined(CLEAVE_TORCH_CUDA) && __has_include(<c10/cuda/CUDACachingAllocator.h>) && \
    __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define CLEAVE_BENCH_CUDA_STATS 1
#endif

#include "client/adamw.h"
#include "client/train_step.h"
#include "lora/adapter_set.h"
#include "model/compute.h"
#include "model/llama_model.h"
#include "util/args.h"

namespace {

using namespace cleave;

struct Shape {
  std::string name;
  LlamaConfig config;
  int64_t batch = 0, seq = 0;
};

std::vector<Shape> shapes() {
  LlamaConfig smol;
  smol.vocab_size = 49152;
  smol.dim = 576;
  smol.n_layers = 30;
  smol.n_heads = 9;
  smol.n_kv_heads = 3;
  smol.head_dim = 64;
  smol.rope_dims = 64;
  smol.ffn_dim = 1536;
  smol.context_length = 2048;
  smol.rope_base = 10000.0;
  smol.tied_output = true;
  LlamaConfig tiny;
  tiny.vocab_size = 32000;
  tiny.dim = 2048;
  tiny.n_layers = 22;
  tiny.n_heads = 32;
  tiny.n_kv_heads = 4;
  tiny.head_dim = 64;
  tiny.rope_dims = 64;
  tiny.ffn_dim = 5632;
  tiny.context_length = 2048;
  tiny.tied_output = false;
  return {{"smollm-135m", smol, 16, 512}, {"tinyllama-1.1b", tiny, 8, 512}};
}

// A random frozen base (normal, std 0.02 like HF's init), built on the CPU
// in float32, then moved: the same construction for every device.
std::shared_ptr<LlamaModel> random_model(const LlamaConfig& c, BaseQuant quant, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto normal = [&](std::vector<int64_t> shape) {
    return at::empty(shape, at::kFloat).normal_(0, 0.02, gen);
  };
  auto linear = [&](const std::string& name, int64_t in, int64_t out) {
    FrozenLinear l;
    l.name = name;
    l.weight = FrozenWeight::from_float(normal({out, in}), quant);
    return l;
  };
  FrozenWeight token_embd = FrozenWeight::from_float(normal({c.vocab_size, c.dim}), quant);
  std::vector<LlamaBlock> blocks;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LlamaBlock b;
    b.attn_norm = at::ones({c.dim}, at::kFloat);
    b.attn_q = linear(p + "attn_q.weight", c.dim, c.q_dim());
    b.attn_k = linear(p + "attn_k.weight", c.dim, c.kv_dim());
    b.attn_v = linear(p + "attn_v.weight", c.dim, c.kv_dim());
    b.attn_output = linear(p + "attn_output.weight", c.q_dim(), c.dim);
    b.ffn_norm = at::ones({c.dim}, at::kFloat);
    b.ffn_gate = linear(p + "ffn_gate.weight", c.dim, c.ffn_dim);
    b.ffn_up = linear(p + "ffn_up.weight", c.dim, c.ffn_dim);
    b.ffn_down = linear(p + "ffn_down.weight", c.ffn_dim, c.dim);
    blocks.push_back(std::move(b));
  }
  FrozenLinear output;
  output.name = "output.weight";
  output.weight = c.tied_output ? token_embd
                                : FrozenWeight::from_float(normal({c.vocab_size, c.dim}), quant);
  return std::make_shared<LlamaModel>(c, token_embd, std::move(blocks), at::ones({c.dim}, at::kFloat),
                                      std::move(output));
}

data::Batch random_batch(int64_t vocab, int64_t B, int64_t T, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor ids = at::randint(vocab, {B, T + 1}, gen, at::kInt).contiguous();  // [B, T + 1]
  const int32_t* p = ids.data_ptr<int32_t>();
  data::Batch batch;
  batch.batch_size = B;
  batch.seq_len = T;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      batch.inputs.push_back(p[b * (T + 1) + t]);
      batch.targets.push_back(p[b * (T + 1) + t + 1]);
      batch.weights.push_back(1.0f);
    }
  }
  batch.n_target_tokens = B * T;
  return batch;
}

ArgParser flags() {
  return ArgParser("gpu_step_bench", "[--shape smollm|tinyllama|all] [options]",
                   "One LoRA fine-tuning step on a GPU (r=16 on all seven projections) per model\n"
                   "shape: one JSON object per shape on stdout. Without a CUDA device it says so\n"
                   "and exits 0.")
      .value("--shape", "NAME", "smollm, tinyllama or all").defaults_to("all")
      .value("--batch", "B", "rows per step (each shape has its own default)")
      .value("--seq", "T", "tokens per row (each shape has its own default)")
      .value("--steps", "N", "timed steps").defaults_to(10)
      .value("--warmup", "N", "untimed steps first").defaults_to(3)
      .value("--precision", "P", "bf16, fp16 or float32").defaults_to("bf16")
      .value("--quant", "Q", "frozen base: none, int8 or q4").defaults_to("none")
      .toggle("--recompute", "block activations recomputed in backward")
      .value("--device", "D", "cuda or cuda:N").defaults_to("cuda");
}

int run(const ParsedArgs& args) {
  if (!at::hasCUDA()) {
    std::cout << "gpu_step_bench: needs a CUDA device and a LibTorch with CUDA (this build: "
              << (torch_has_cuda() ? "CUDA LibTorch, no device visible" : "CPU LibTorch")
              << "); nothing measured. See README, GPU.\n";
    return 0;
  }
  const c10::Device device = resolve_device(args.require("--device"));
  const Precision precision = parse_precision(args.require("--precision"));
  const BaseQuant quant = parse_base_quant(args.require("--quant"));
  const std::string which = args.require("--shape");
  const int steps = static_cast<int>(args.get_int("--steps"));
  const int warmup = static_cast<int>(args.get_int("--warmup"));
  const bool recompute = args.get_switch("--recompute");

  for (Shape shape : shapes()) {
    if (which != "all" && shape.name.rfind(which, 0) != 0) continue;
    if (args.has("--batch")) shape.batch = args.get_int("--batch");
    if (args.has("--seq")) shape.seq = args.get_int("--seq");
    std::shared_ptr<LlamaModel> model = random_model(shape.config, quant, 1);
    model->to(device, compute_dtype(precision));
    lora::LoraOptions options;
    options.rank = 16;
    options.alpha = 32;
    options.dropout = 0.0;
    options.targets = {"q", "k", "v", "o", "gate", "up", "down"};
    lora::AdapterSet adapters = lora::AdapterSet::create(*model, options, 2);
    adapters.set_training(true);
    AdamW optimizer(adapters.parameters(), AdamWOptions{});
    LocalTrainStep step(model, adapters, recompute);
    const data::Batch batch = random_batch(shape.config.vocab_size, shape.batch, shape.seq, 3);
#ifdef CLEAVE_BENCH_CUDA_STATS
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
    auto one_step = [&] {
      const StepResult r = step.forward_backward(batch, StepContext{});  // .item(): synchronises
      optimizer.step(1e-4);
      optimizer.zero_grad();
      return r.loss;
    };
    for (int i = 0; i < warmup; ++i) one_step();
    double loss = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) loss = one_step();
    adapters.parameters().front().sum().item<double>();  // waits for the last AdamW kernels
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double tokens_per_s = static_cast<double>(shape.batch * shape.seq * steps) / seconds;
    double peak_gib = -1;
#ifdef CLEAVE_BENCH_CUDA_STATS
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    peak_gib = static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0 * 1024.0);
#endif
    std::printf(
        "{\"impl\": \"cleave\", \"shape\": \"%s\", \"batch\": %lld, \"seq\": %lld, \"precision\": \"%s\", "
        "\"quant\": \"%s\", \"recompute\": %s, \"steps\": %d, \"seconds\": %.4f, \"tokens_per_s\": %.1f, "
        "\"peak_gib\": %.3f, \"final_loss\": %.4f, \"trainable\": %lld}\n",
        shape.name.c_str(), static_cast<long long>(shape.batch), static_cast<long long>(shape.seq),
        to_string(precision), to_string(quant), recompute ? "true" : "false", steps, seconds, tokens_per_s,
        peak_gib, loss, static_cast<long long>(adapters.parameter_count()));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_with_flags(flags(), argc, argv, run); }
