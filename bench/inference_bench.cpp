// Split inference against local generation (issue 16, section 1).
//
// For each model: time to first token (the prompt's prefill and the first
// sampled token, session open included for split) and the median latency of
// each further token, greedy, of
//   - local generation (model/generate.h's ModelDecoder, every block here);
//   - split generation (split/split_decoder.h) against a SplitServer in this
//     process, serving on tcp://127.0.0.1 behind mutually authenticated TLS
//     1.3 (certificates from a throwaway CA, the split server's peer policy),
//     u_shaped and vanilla with the f32 codec, and u_shaped with every codec;
// and the bytes per generated token on the wire (both directions, open,
// prefill and close included, from the site's wire::ByteCounter).
//
// Every configuration generates the same tokens from the same prompt
// (random ids); the split runs check that their greedy output equals the
// local one for f32 and report how many tokens match for the lossy codecs.
// Models: stories260K (../shared/models) and a random Llama of ~40M
// parameters (dim 512, 8 blocks), base int8 as in split_step_bench; LoRA
// r=8 on all seven projections with random B, the server's share on its blocks.
//
// Usage: inference_bench --help
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_models.h"
#include "cli/secure_channels.h"
#include "lora/adapter_set.h"
#include "model/cpu_matmul.h"
#include "model/generate.h"
#include "model/model_loader.h"
#include "model/model_writer.h"
#include "secure/ca.h"
#include "split/peer_policy.h"
#include "split/split_decoder.h"
#include "split/split_server.h"
#include "split/tensor_wire.h"
#include "util/args.h"
#include "util/stopwatch.h"

namespace {

using namespace cleave;

struct Args {
  std::vector<std::string> only;
  int64_t prompt = 32;
  int64_t tokens = 64;
  int repeats = 3;
  int threads = 1;
  int32_t cut = 2;
  std::string stories = "../shared/models/stories260K.gguf";
};

struct Timing {
  std::vector<double> first_token_ms;   // one per repeat
  std::vector<double> per_token_ms;     // each repeat's median step
  double bytes_per_token = 0;
  std::vector<TokenId> tokens;
};

// A decoder whose feed() times itself: the first call is the prefill.
class TimedDecoder : public Decoder {
 public:
  explicit TimedDecoder(Decoder& inner) : inner_(inner) {}
  at::Tensor feed(const std::vector<TokenId>& tokens) override {
    const auto start = SteadyTime::now();
    at::Tensor logits = inner_.feed(tokens);
    feeds_ms.push_back(1000.0 * seconds_since(start));
    return logits;
  }
  void restart() override { inner_.restart(); }
  int64_t capacity() const override { return inner_.capacity(); }
  std::vector<double> feeds_ms;

 private:
  Decoder& inner_;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One generation with a fresh decoder from `make_decoder()` into `timing`;
// opening a split session counts into the time to first token.
template <class Make, class Bytes>
void measure_once(const std::vector<TokenId>& prompt, int64_t tokens, Make make_decoder, Bytes bytes_of,
                  Timing& timing) {
  const auto start = SteadyTime::now();
  auto decoder = make_decoder();
  double first_ms = 0;
  TimedDecoder timed(*decoder);
  timing.tokens = generate(timed, prompt, -1, SamplingOptions::greedy(tokens), [&](TokenId) {
    if (first_ms == 0) first_ms = 1000.0 * seconds_since(start);
  });
  timing.first_token_ms.push_back(first_ms);
  timing.per_token_ms.push_back(median(std::vector<double>(timed.feeds_ms.begin() + 1, timed.feeds_ms.end())));
  timing.bytes_per_token = bytes_of(*decoder, timing.tokens.size());
}

struct Pki {
  cli::SecureConfig server, site;
};

Pki make_pki(const std::filesystem::path& dir) {
  secure::ca_init((dir / "ca").string(), "inference-bench");
  const secure::TlsIdentity server =
      secure::ca_issue((dir / "ca").string(), secure::NodeRole::split_server, "split-0", (dir / "nodes").string())
          .identity;
  const secure::TlsIdentity site =
      secure::ca_issue((dir / "ca").string(), secure::NodeRole::client, "site-a", (dir / "nodes").string()).identity;
  auto config = [](const secure::TlsIdentity& id) {
    cli::SecureConfig c;
    c.cert = id.cert_path;
    c.key = id.key_path;
    c.ca = id.ca_path;
    return c;
  };
  return {config(server), config(site)};
}

std::shared_ptr<LlamaModel> load_model(const std::string& name, const Args& args, const std::filesystem::path& dir) {
  if (name == "stories260K") return load_llama(args.stories, BaseQuant::int8);
  const std::string path = (dir / "llama-40M.gguf").string();
  const LlamaConfig config = bench::random_llama_config("llama-40M");
  write_llama_gguf(path, config, random_llama_weights(config, 1234), nullptr);
  return load_llama(path, BaseQuant::int8);
}

void bench_model(const std::string& name, const Args& args, const Pki& pki, const std::filesystem::path& dir) {
  const std::shared_ptr<LlamaModel> model = load_model(name, args, dir);
  const int64_t L = model->n_layers();
  lora::LoraOptions lora;
  lora.rank = 8;
  lora.alpha = 16;
  lora::AdapterSet adapters = lora::AdapterSet::create(*model, lora, 3);
  {
    at::NoGradGuard no_grad;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4);
    for (const auto& [n, pair] : adapters.pairs()) pair.b.normal_(0.0, 0.02, gen);
  }
  at::Tensor ids = at::randint(model->config().vocab_size, {args.prompt}, at::make_generator<at::CPUGeneratorImpl>(5),
                               at::kLong);
  std::vector<TokenId> prompt(static_cast<size_t>(args.prompt));
  for (int64_t i = 0; i < args.prompt; ++i) prompt[static_cast<size_t>(i)] = static_cast<TokenId>(ids[i].item<int64_t>());

  const int64_t capacity = args.prompt + args.tokens;

  // The split server in this process, on TLS over tcp://127.0.0.1.
  split::SplitServerOptions options;
  options.lora = lora;
  options.min_cut_layer = args.cut;
  auto server = std::make_unique<split::SplitServer>(
      model, options, adapters.subset([&](int64_t layer) { return layer >= args.cut; }), Log::silent());
  const Log quiet = Log::silent();
  std::unique_ptr<net::ServerChannel> server_channel = cli::bind_service(
      "tcp://127.0.0.1:0", pki.server, split::split_server_policy(), options.max_message_bytes, quiet);
  std::atomic<bool> stop{false};
  std::thread serving([&] { server->serve(*server_channel, stop, 10); });
  std::unique_ptr<net::ClientChannel> channel = cli::connect_service(
      server_channel->endpoint(), pki.site, secure::NodeRole::split_server, "split-0", options.max_message_bytes, quiet);

  struct Run {
    std::string name;
    split::SplitMode mode;
    wire::WireDType codec;
    lora::AdapterSet site;
    Timing timing;
  };
  std::vector<Run> runs;
  for (const auto& [mode, codec] : std::vector<std::pair<split::SplitMode, wire::WireDType>>{
           {split::SplitMode::u_shaped, wire::WireDType::F32},
           {split::SplitMode::vanilla, wire::WireDType::F32},
           {split::SplitMode::u_shaped, wire::WireDType::BF16},
           {split::SplitMode::u_shaped, wire::WireDType::F16},
           {split::SplitMode::u_shaped, wire::WireDType::I8_ROWSCALE},
           {split::SplitMode::u_shaped, wire::WireDType::I4_GROUP},
           {split::SplitMode::vanilla, wire::WireDType::I8_ROWSCALE}}) {
    const int64_t top = mode == split::SplitMode::u_shaped ? L - 1 : L;
    runs.push_back({mode == split::SplitMode::u_shaped ? "split u_shaped" : "split vanilla", mode, codec,
                    adapters.subset([&](int64_t layer) { return layer < args.cut || layer >= top; }), {}});
  }

  // Every configuration once per repeat, in turn, so load from other
  // processes on the machine hits them alike.
  Timing local;
  for (int r = 0; r < args.repeats; ++r) {
    measure_once(
        prompt, args.tokens, [&] { return std::make_unique<ModelDecoder>(*model, &adapters, capacity); },
        [](Decoder&, size_t) { return 0.0; }, local);
    for (Run& run : runs) {
      split::SplitDecoderOptions o;
      o.split.client_id = "site-a";
      o.split.mode = run.mode;
      o.split.cut_layer = args.cut;
      o.split.top_cut = static_cast<int32_t>(L - 1);
      o.split.activation_codec = run.codec;
      o.capacity = capacity;
      measure_once(
          prompt, args.tokens, [&] { return std::make_unique<split::SplitDecoder>(model, &run.site, *channel, o); },
          [](Decoder& d, size_t n) {
            auto& decoder = static_cast<split::SplitDecoder&>(d);
            decoder.close();
            const wire::ByteCounter& bytes = decoder.bytes();
            return static_cast<double>(bytes.total_bytes(wire::Direction::sent) +
                                       bytes.total_bytes(wire::Direction::received)) /
                   static_cast<double>(std::max<size_t>(n, 1));
          },
          run.timing);
    }
  }

  std::printf("\n%s (%s), prompt %ld tokens, %ld generated, cut_layer %d, %d thread(s), median of %d\n",
              name.c_str(), model->config().summary().c_str(), static_cast<long>(args.prompt),
              static_cast<long>(args.tokens), args.cut, args.threads, args.repeats);
  std::printf("| run | codec | time to first token ms | per token ms | bytes per generated token | greedy tokens equal to local |\n");
  std::printf("|---|---|---:|---:|---:|---:|\n");
  std::printf("| local | - | %.2f | %.3f | 0 | %zu/%zu |\n", median(local.first_token_ms), median(local.per_token_ms),
              local.tokens.size(), local.tokens.size());
  for (const Run& run : runs) {
    const Timing& t = run.timing;
    size_t equal = 0;
    while (equal < t.tokens.size() && equal < local.tokens.size() && t.tokens[equal] == local.tokens[equal]) ++equal;
    std::printf("| %s (TLS, tcp loopback) | %s | %.2f | %.3f | %.0f | %zu/%zu |\n", run.name.c_str(),
                wire::to_string(run.codec).c_str(), median(t.first_token_ms), median(t.per_token_ms),
                t.bytes_per_token, equal, local.tokens.size());
  }
  std::fflush(stdout);
  stop = true;
  serving.join();
}

ArgParser flags() {
  const Args defaults;
  return ArgParser("inference_bench", "[--only stories260K|llama-40M] [options]",
                   "Split inference against local generation: time to first token, per-token\n"
                   "latency and bytes per generated token for each codec.")
      .value("--only", "MODEL", "stories260K or llama-40M (repeatable); both when absent")
      .value("--prompt", "N", "prompt tokens").defaults_to(defaults.prompt)
      .value("--tokens", "N", "tokens generated").defaults_to(defaults.tokens)
      .value("--repeats", "N", "runs of each configuration").defaults_to(defaults.repeats)
      .value("--threads", "N", "LibTorch threads").defaults_to(defaults.threads)
      .value("--cut", "N", "the site's cut layer").defaults_to(defaults.cut)
      .value("--stories", "PATH", "stories260K's GGUF").defaults_to(defaults.stories);
}

int run(const ParsedArgs& flags) {
  Args args;
  for (const std::string& name : flags.all("--only")) args.only.push_back(name);
  args.prompt = flags.get_int("--prompt");
  args.tokens = flags.get_int("--tokens");
  args.repeats = static_cast<int>(flags.get_int("--repeats"));
  args.threads = static_cast<int>(flags.get_int("--threads"));
  args.cut = static_cast<int32_t>(flags.get_int("--cut"));
  args.stories = flags.require("--stories");
  at::set_num_threads(args.threads);
  use_cpu_matmul(CpuMatmul::float32);   // the greedy comparison needs the same matmuls on both sides
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("cleave-inference-bench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  try {
    const Pki pki = make_pki(dir);
    for (const std::string name : {"stories260K", "llama-40M"}) {
      if (!args.only.empty() && std::find(args.only.begin(), args.only.end(), name) == args.only.end()) continue;
      bench_model(name, args, pki, dir);
    }
  } catch (const std::exception& e) {
    std::cerr << "inference_bench: " << e.what() << "\n";
    fs::remove_all(dir);
    return 1;
  }
  fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_with_flags(flags(), argc, argv, run); }
