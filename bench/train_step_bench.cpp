// Tokens/s and peak RSS of one LoRA training step (forward, backward, AdamW
// step; frozen base; r=8, alpha 16 on all seven projections) for three model
// sizes at base none/int8/q4, plus a float32 matmul rate and the model FLOP
// utilisation against it.
//
// Every configuration runs in its own child process (this executable started
// again with --child), so its peak RSS (VmHWM) is its own.
//
// Training FLOPs per token (written down once, used for MFU):
//   P     = elements of all frozen matmul weights (7 per block + output head)
//   P_l   = LoRA parameters (r * (in + out) per adapted projection)
//   attn  = 4 * T * q_dim * n_layers   (q k^T and p v, full [T, T], the usual
//           non-causal count; a causal kernel does about half of it)
//   forward  = 2 P + 2 P_l + attn
//   backward = 2 P        (input gradients only: the base is frozen)
//            + 4 P_l      (input and weight gradients of A and B)
//            + 2 attn     (dq, dk, dv, dp)
//   total    = 4 P + 6 P_l + 3 attn
//
// Usage: train_step_bench --help
// MFU is against the measured matmul rate of the arithmetic in use (float32,
// or bf16 when the frozen matmuls run in bf16).
// CLEAVE_BENCH_MEMORY_TRACE=1 in the environment prints resident and
// malloc'd memory, and what is resident in libraries, heap and anonymous
// mappings, after loading and after every step (on stderr).
// CLEAVE_BENCH_OP_TRACE=FILE runs one more step after the timed ones under
// LibTorch's profiler and writes it to FILE (a Chrome trace: every ATen op
// and autograd node with its start and duration); bench/op_profile.py sums
// it by op. The profiler's own cost lengthens that step, which is not in the
// median.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_models.h"
#include "client/adamw.h"
#include "client/train_step.h"
#include "lora/adapter_set.h"
#include "model/attention.h"
#include "model/cpu_matmul.h"
#include "model/int8_matmul.h"
#include "model/llama_model.h"
#include "model/model_loader.h"
#include "model/openmp_spin.h"
#include "model/tensor_allocator.h"
#include "util/args.h"

namespace cleave::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Workload {
  std::string name;
  int64_t batch = 0, seq = 0;
  int steps = 0, warmup = 0;  // defaults; --steps / --warmup override
};

const std::vector<Workload> kWorkloads = {
    {"stories260K", 32, 256, 5, 2},
    {"llama-40M", 8, 256, 3, 1},
    {"llama-110M", 4, 256, 3, 1},
};
const std::vector<std::string> kQuants = {"none", "int8", "q4"};

// A random Llama built tensor by tensor: each float matrix is quantized as
// soon as it is drawn, so loading never holds the float model (peak RSS is the
// training run's, not the loader's).
std::shared_ptr<LlamaModel> random_model(const LlamaConfig& c, BaseQuant quant, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    FrozenLinear l;
    l.name = name;
    l.weight = FrozenWeight::from_float(at::empty({out, in}).normal_(0.0, 0.02, gen), quant);
    return l;
  };
  FrozenWeight token_embd =
      FrozenWeight::from_float(at::empty({c.vocab_size, c.dim}).normal_(0.0, 0.02, gen), quant);
  std::vector<LlamaBlock> blocks;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LlamaBlock b;
    b.attn_norm = at::ones({c.dim});
    b.attn_q = linear(p + "attn_q.weight", c.q_dim(), c.dim);
    b.attn_k = linear(p + "attn_k.weight", c.kv_dim(), c.dim);
    b.attn_v = linear(p + "attn_v.weight", c.kv_dim(), c.dim);
    b.attn_output = linear(p + "attn_output.weight", c.dim, c.q_dim());
    b.ffn_norm = at::ones({c.dim});
    b.ffn_gate = linear(p + "ffn_gate.weight", c.ffn_dim, c.dim);
    b.ffn_up = linear(p + "ffn_up.weight", c.ffn_dim, c.dim);
    b.ffn_down = linear(p + "ffn_down.weight", c.dim, c.ffn_dim);
    blocks.push_back(std::move(b));
  }
  FrozenLinear output = linear("output.weight", c.vocab_size, c.dim);
  return std::make_shared<LlamaModel>(c, token_embd, std::move(blocks), at::ones({c.dim}),
                                      std::move(output));
}

// Training FLOPs per token; see the formula at the top of this file.
double train_flops_per_token(const LlamaModel& model, const lora::AdapterSet& adapters,
                             int64_t seq) {
  double matmul_params = 0;
  for (const FrozenLinear* l : model.linears()) {
    matmul_params += static_cast<double>(l->weight.out_features() * l->weight.in_features());
  }
  const LlamaConfig& c = model.config();
  const double lora_params = static_cast<double>(adapters.parameter_count());
  const double attn = 4.0 * seq * c.q_dim() * c.n_layers;
  return 4 * matmul_params + 6 * lora_params + 3 * attn;
}

// A "Vm...:" field of /proc/self/status in KiB, or -1 when it is missing.
int64_t status_kib(const char* key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::strlen(key)));
  }
  return -1;
}

int64_t peak_rss_kib() {
  const int64_t hwm = status_kib("VmHWM:");
  if (hwm >= 0) return hwm;
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// Resident KiB by kind of mapping, from /proc/self/smaps: shared libraries
// (file-backed .so), the brk heap, and anonymous mappings (tensors, arenas).
struct ResidentParts {
  int64_t libraries = 0, heap = 0, anonymous = 0;
};
ResidentParts resident_parts() {
  ResidentParts parts;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  int64_t* current = nullptr;
  while (std::getline(smaps, line)) {
    if (line.rfind("Rss:", 0) == 0) {
      if (current) *current += std::stoll(line.substr(4));
      continue;
    }
    // A mapping's header: "start-end perms offset dev inode [path]".
    std::istringstream header(line);
    std::string range, perms, offset, dev, inode, path;
    if (!(header >> range >> perms >> offset >> dev >> inode) || range.find('-') == std::string::npos) {
      continue;  // another "Key: value" line of the current mapping
    }
    header >> path;
    if (path.empty()) {
      current = &parts.anonymous;
    } else if (path == "[heap]") {
      current = &parts.heap;
    } else if (path.find(".so") != std::string::npos) {
      current = &parts.libraries;
    } else {
      current = nullptr;  // the executable, stack, vdso
    }
  }
  return parts;
}

// With CLEAVE_BENCH_MEMORY_TRACE set: resident memory (now and peak) and
// what malloc has handed out (now, and the most a 200 us sampler saw since
// the previous line), on stderr.
std::atomic<size_t> max_in_use{0};
size_t heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}
void trace_memory(const char* stage) {
  if (std::getenv("CLEAVE_BENCH_MEMORY_TRACE") == nullptr) return;
  static const bool sampling = [] {
    std::thread([] {
      for (;;) {
        size_t now = heap_in_use(), seen = max_in_use.load();
        while (now > seen && !max_in_use.compare_exchange_weak(seen, now)) {}
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }).detach();
    return true;
  }();
  (void)sampling;
  const ResidentParts parts = resident_parts();
  std::fprintf(stderr,
               "memory %-18s rss %lld KiB, peak %lld KiB, malloc in use %zu MiB, max %zu MiB; "
               "resident: libraries %lld, heap %lld, anonymous %lld MiB\n",
               stage, static_cast<long long>(status_kib("VmRSS:")),
               static_cast<long long>(status_kib("VmHWM:")), heap_in_use() >> 20,
               max_in_use.load() >> 20, static_cast<long long>(parts.libraries >> 10),
               static_cast<long long>(parts.heap >> 10), static_cast<long long>(parts.anonymous >> 10));
  max_in_use = 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct ChildResult {
  double tokens_per_s = 0;
  double step_s = 0;
  int64_t peak_rss_kib = 0;
  double flops_per_token = 0;
  int64_t parameters = 0, trainable = 0;
};

// One configuration, in this (child) process. Prints one line:
// "RESULT <tok/s> <median step s> <peak RSS KiB> <flops/token> <params> <trainable>".
int run_child(const Workload& w, const std::string& quant_name, const std::string& stories_path,
              bool recompute, int64_t micro_batch) {
  const BaseQuant quant = parse_base_quant(quant_name);
  trace_memory("start");
  std::shared_ptr<LlamaModel> model = w.name == "stories260K"
                                          ? load_llama(stories_path, quant)
                                          : random_model(bench::random_llama_config(w.name), quant, 1234);
  lora::LoraOptions options;  // r = 8, alpha = 16, all seven projections
  lora::AdapterSet adapters = lora::AdapterSet::create(*model, options, 42);
  adapters.set_training(true);
  trim_tensor_cache();  // as load_base_model does: the building spike goes back
  trace_memory("model + adapters");
  LocalTrainStep step(model, adapters, recompute, micro_batch);
  AdamW optimizer(adapters.parameters(), AdamWOptions{});

  data::Batch batch;
  batch.batch_size = w.batch;
  batch.seq_len = w.seq;
  const int64_t n = w.batch * w.seq;
  at::Tensor tokens = at::randint(model->config().vocab_size, {n + 1},
                                  at::make_generator<at::CPUGeneratorImpl>(7), at::kInt);
  const int32_t* t = tokens.data_ptr<int32_t>();
  batch.inputs.assign(t, t + n);
  batch.targets.assign(t + 1, t + n + 1);
  batch.weights.assign(n, 1.0f);
  batch.n_target_tokens = n;

  auto train_one_step = [&](int i) {
    StepContext context;
    context.step = i;
    context.lr = 1e-4;
    step.forward_backward(batch, context);
    optimizer.step(context.lr);
    optimizer.zero_grad();
  };
  std::vector<double> seconds;
  for (int i = 0; i < w.warmup + w.steps; ++i) {
    const auto start = Clock::now();
    train_one_step(i);
    trace_memory(("after step " + std::to_string(i)).c_str());
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    if (i >= w.warmup) seconds.push_back(s);
  }
  if (const char* op_trace = std::getenv("CLEAVE_BENCH_OP_TRACE")) {
    const int i = w.warmup + w.steps;  // one more step, under the profiler
    {
      torch::autograd::profiler::RecordProfile guard(op_trace);
      train_one_step(i);
    }
    std::fprintf(stderr, "op trace of step %d written to %s\n", i, op_trace);
  }
  const double step_s = median(seconds);
  std::printf("RESULT %.6g %.6g %lld %.6g %lld %lld\n", static_cast<double>(n) / step_s, step_s,
              static_cast<long long>(peak_rss_kib()),
              train_flops_per_token(*model, adapters, w.seq),
              static_cast<long long>(model->parameter_count()),
              static_cast<long long>(adapters.parameter_count()));
  return 0;
}

// Runs this executable again with `args`, returns its RESULT line parsed, or
// nullopt (with the reason on stderr) when it failed.
std::optional<ChildResult> run_in_child(const std::vector<std::string>& args) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed: " + std::string(std::strerror(errno)));
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed: " + std::string(std::strerror(errno)));
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    std::fprintf(stderr, "exec of /proc/self/exe failed: %s\n", std::strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  std::string output;
  char buf[4096];
  ssize_t got;
  while ((got = read(fds[0], buf, sizeof buf)) > 0) output.append(buf, static_cast<size_t>(got));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << "child " << args[2] << " failed (status " << status << ")\n"
              << output;
    return std::nullopt;
  }
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("RESULT ", 0) != 0) continue;
    std::istringstream fields(line.substr(7));
    ChildResult r;
    fields >> r.tokens_per_s >> r.step_s >> r.peak_rss_kib >> r.flops_per_token >> r.parameters >>
        r.trainable;
    if (fields) return r;
  }
  std::cerr << "child printed no RESULT line:\n" << output;
  return std::nullopt;
}

// The best rate of 5 timed calls of `product` (after one untimed call), an
// [m, k] x [k, n] product, in GFLOP/s.
template <typename Product>
double best_gflops(int64_t m, int64_t k, int64_t n, Product product) {
  product();
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    product();
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::max(best, 2.0 * m * k * n / s / 1e9);
  }
  return best;
}

// A [m, k] x [k, n] matmul in `dtype` (float32 or bf16).
double matmul_gflops(int64_t m, int64_t k, int64_t n, at::ScalarType dtype = at::kFloat) {
  at::Tensor a = at::randn({m, k}).to(dtype), b = at::randn({k, n}).to(dtype);
  at::Tensor c = at::mm(a, b);
  return best_gflops(m, k, n, [&] { at::mm_out(c, a, b); });
}

// The int8 products' rate on codes already rounded (model/int8_matmul.h):
// x [m, k] times an int8 weight [n, k], scales applied.
double int8_gflops(int64_t m, int64_t k, int64_t n) {
  const Int8Rows a = quantize_rows(at::randn({m, k})), b = quantize_rows(at::randn({n, k}));
  at::Tensor c = at::empty({m, n});
  return best_gflops(m, k, n, [&] { int8_product_nt(a, b, c); });
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

ArgParser flags() {
  return ArgParser("train_step_bench", "[--only NAME:QUANT,...] [options]",
                   "Tokens/s, MFU and peak RSS of one LoRA training step per model and base\n"
                   "quantization, each in its own child process.\n"
                   "models: stories260K llama-40M llama-110M; quants: none int8 q4")
      .value("--only", "NAME:QUANT,...", "the configurations to run (repeatable); all when absent")
      .value("--steps", "N", "timed steps (each model has its own default)")
      .value("--warmup", "N", "untimed steps first (each model has its own default)")
      .value("--threads", "N", "LibTorch threads").defaults_to(std::max(1u, std::thread::hardware_concurrency()))
      .value("--stories", "PATH", "stories260K's GGUF").defaults_to("../shared/models/stories260K.gguf")
      .value("--tsv", "FILE", "append one tab-separated line per configuration")
      .toggle("--recompute", "train.recompute: block activations recomputed in backward")
      .value("--batch", "N", "rows per step instead of the model's default")
      .value("--micro-batch", "N", "train.micro_batch: rows per forward/backward, gradients accumulated; "
                                   "0: the whole batch")
      .defaults_to(0)
      .toggle("--glibc-tensors", "tensors from LibTorch's default allocator, not cleave's mapping one")
      .value("--tensor-cache", "MIB", "freed tensor mappings kept for reuse (TensorAllocatorOptions)")
      .value("--attention", "FORM", "CPU attention form: auto (model/attention.h decides), fused or blas")
      .defaults_to("auto")
      .value("--matmul", "MODE", "frozen matmuls' arithmetic (runtime.matmul): auto, float32, bf16 or int8")
      .defaults_to("auto")
      .value("--child", "NAME:QUANT", "(internal) run one configuration and print its RESULT line");
}

int run(const ParsedArgs& args, const char* program) {
  std::vector<std::string> only;
  for (const std::string& list : args.all("--only")) {
    for (const std::string& s : split(list, ',')) only.push_back(s);
  }
  std::optional<int> steps, warmup;
  if (args.has("--steps")) steps = static_cast<int>(args.get_int("--steps"));
  if (args.has("--warmup")) warmup = static_cast<int>(args.get_int("--warmup"));
  const int threads = static_cast<int>(args.get_int("--threads"));
  const std::string stories = args.require("--stories");
  const std::string tsv = args.get("--tsv").value_or("");
  const bool recompute = args.get_switch("--recompute");
  std::optional<int64_t> batch_rows;
  if (args.has("--batch")) {
    batch_rows = args.get_int("--batch");
    if (*batch_rows <= 0) throw UsageError("--batch must be > 0");
  }
  const int64_t micro_batch = args.get_int("--micro-batch");
  if (micro_batch < 0) throw UsageError("--micro-batch must be >= 0 (0: the whole batch)");
  const bool glibc_tensors = args.get_switch("--glibc-tensors");
  std::optional<size_t> tensor_cache_mib;
  if (args.has("--tensor-cache")) {
    const int64_t mib = args.get_int("--tensor-cache");
    if (mib < 0) throw UsageError("--tensor-cache must be >= 0");
    tensor_cache_mib = static_cast<size_t>(mib);
  }
  const std::string attention = args.require("--attention");
  const std::string matmul = args.require("--matmul");
  std::optional<std::pair<std::string, std::string>> child;
  if (const std::optional<std::string> which = args.get("--child")) {
    const size_t colon = which->find(':');
    if (colon == std::string::npos) throw UsageError("--child expects NAME:QUANT, got '" + *which + "'");
    child = std::make_pair(which->substr(0, colon), which->substr(colon + 1));
  }
  at::set_num_threads(threads);

  auto workload = [&](const std::string& name) {
    for (Workload w : kWorkloads) {
      if (w.name != name) continue;
      if (steps) w.steps = *steps;
      if (warmup) w.warmup = *warmup;
      if (batch_rows) w.batch = *batch_rows;
      return w;
    }
    throw UsageError("unknown model '" + name +
                                "': expected stories260K, llama-40M or llama-110M");
  };
  // What `cleave` does first thing, unless asked for LibTorch's default.
  if (!glibc_tensors) {
    TensorAllocatorOptions options;
    if (tensor_cache_mib) options.cache_limit_bytes = *tensor_cache_mib << 20;
    install_tensor_allocator(options);
  }
  set_cpu_attention_form(parse_cpu_attention_form(attention));
  const CpuMatmul matmul_mode = resolve_cpu_matmul(matmul);
  if (child) {
    use_cpu_matmul(matmul_mode);
    return run_child(workload(child->first), child->second, stories, recompute, micro_batch);
  }

  std::vector<std::pair<Workload, std::string>> rows;
  for (const Workload& w : kWorkloads) {
    for (const std::string& q : kQuants) {
      const std::string key = w.name + ":" + q;
      if (only.empty() || std::find(only.begin(), only.end(), key) != only.end()) {
        rows.emplace_back(workload(w.name), q);
      }
    }
  }
  if (rows.empty()) throw UsageError("--only selected no configuration (see --help)");

  // float32 before use_cpu_matmul: in bf16 mode it leaves OpenBLAS one thread
  const double gflops_square = matmul_gflops(1024, 1024, 1024);
  const double gflops_model = matmul_gflops(1024, 768, 2048);
  use_cpu_matmul(matmul_mode);
  const bool bf16 = matmul_mode != CpuMatmul::float32;  // int8 mode runs the other weights in bf16
  const double gflops_bf16 = bf16 ? matmul_gflops(1024, 768, 2048, at::kBFloat16) : 0;
  const double gflops_int8 = matmul_mode == CpuMatmul::int8 ? int8_gflops(1024, 768, 2048) : 0;
  // MFU is against the rate of the arithmetic the row's frozen products use.
  auto peak_for = [&](const std::string& quant) {
    if (gflops_int8 > 0 && quant == "int8") return gflops_int8;
    return bf16 ? gflops_bf16 : std::max(gflops_square, gflops_model);
  };
  if (micro_batch > 0) std::printf("micro-batches of %lld rows, gradients accumulated\n", static_cast<long long>(micro_batch));
  std::printf("threads: %d%s%s\n", at::get_num_threads(),
              recompute ? ", block activations recomputed in backward" : "",
              glibc_tensors ? ", LibTorch's default CPU allocator" : "");
  if (attention != "auto") std::printf("CPU attention: always the %s form\n", attention.c_str());
  std::printf("%s\n", describe_cpu_matmul(matmul).c_str());
  std::printf("float32 matmul: 1024x1024x1024 %.1f GFLOP/s, 1024x768x2048 %.1f GFLOP/s\n",
              gflops_square, gflops_model);
  if (bf16) std::printf("bf16 matmul: 1024x768x2048 %.1f GFLOP/s (MFU is against it)\n", gflops_bf16);
  if (gflops_int8 > 0) {
    std::printf("int8 matmul: 1024x768x2048 %.1f GFLOP/s (MFU of int8 rows is against it)\n", gflops_int8);
  }
  std::printf("%-12s %6s %5s %5s %12s %10s %7s %14s\n", "model", "batch", "seq", "quant",
              "tokens/s", "step s", "MFU", "peak RSS MiB");

  std::ofstream tsv_out;
  if (!tsv.empty()) {
    tsv_out.open(tsv, std::ios::app);
    if (!tsv_out) throw std::runtime_error("cannot open " + tsv + " for appending");
  }
  int failures = 0;
  for (const auto& [w, quant] : rows) {
    if (w.name == "stories260K" && access(stories.c_str(), R_OK) != 0) {
      std::printf("%-12s skipped: %s not found (pass --stories PATH)\n", w.name.c_str(),
                  stories.c_str());
      continue;
    }
    std::vector<std::string> child_args = {
        program, "--child", w.name + ":" + quant, "--steps", std::to_string(w.steps), "--warmup",
        std::to_string(w.warmup), "--threads", std::to_string(threads), "--stories", stories};
    if (recompute) child_args.push_back("--recompute");
    if (batch_rows) child_args.insert(child_args.end(), {"--batch", std::to_string(*batch_rows)});
    if (micro_batch > 0) child_args.insert(child_args.end(), {"--micro-batch", std::to_string(micro_batch)});
    if (glibc_tensors) child_args.push_back("--glibc-tensors");
    if (tensor_cache_mib) {
      child_args.insert(child_args.end(), {"--tensor-cache", std::to_string(*tensor_cache_mib)});
    }
    child_args.insert(child_args.end(), {"--attention", attention, "--matmul", matmul});
    std::optional<ChildResult> r = run_in_child(child_args);
    if (!r) {
      ++failures;
      continue;
    }
    const double peak = peak_for(quant);
    const double mfu = r->tokens_per_s * r->flops_per_token / (peak * 1e9);
    std::printf("%-12s %6lld %5lld %5s %12.0f %10.3f %6.1f%% %14.1f\n", w.name.c_str(),
                static_cast<long long>(w.batch), static_cast<long long>(w.seq), quant.c_str(),
                r->tokens_per_s, r->step_s, 100 * mfu, r->peak_rss_kib / 1024.0);
    std::fflush(stdout);
    if (tsv_out) {
      tsv_out << w.name << '\t' << w.batch << '\t' << w.seq << '\t' << quant << '\t'
              << r->tokens_per_s << '\t' << mfu << '\t' << r->peak_rss_kib << '\t' << peak << '\t'
              << r->flops_per_token << '\t' << to_string(cpu_matmul()) << '\n';
    }
  }
  return failures ? 1 : 0;
}

}  // namespace
}  // namespace cleave::bench

int main(int argc, char** argv) {
  // As `cleave` does (children inherit the setting). GOMP_SPINCOUNT=300000,
  // libgomp's default, in the environment measures without it.
  cleave::settle_openmp_spin(argv);
  return cleave::run_with_flags(cleave::bench::flags(), argc, argv,
                                [&](const cleave::ParsedArgs& args) { return cleave::bench::run(args, argv[0]); });
}
