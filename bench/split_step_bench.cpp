// Split learning against the local step (issue 3, "Benchmark").
//
// Default mode: median step time (forward + backward + AdamW on both sides,
// after warmup) of the unsplit local step and of split steps (vanilla over
// the in-process transport and over tcp://127.0.0.1 ZeroMQ, U-shaped over
// tcp, and vanilla over tcp with each activation/gradient codec), for
// stories260K at 32 x 256 and a random ~40M Llama at 8 x 256; base int8, LoRA
// r=8 on all seven projections, cut_layer 2. Bytes per token per direction
// come from the client's wire::ByteCounter.
//
// All configurations of a model step in turn on the same batch (local, split
// inproc, split tcp, ...), so load from other processes on the machine hits
// them alike and the ratios stay fair.
//
// Each step's time is split into: client compute (step time minus the time
// the client blocks in recv), server compute (time inside SplitServer::handle,
// measured in the server thread) and the rest of the wait (transport). The
// client and the server alternate (the client blocks while the server works),
// so each side may use the same --threads LibTorch threads (default 1: on a
// machine shared with other processes, OpenMP barriers waiting on descheduled
// threads made 2 threads several times slower than 1 on the 2-core machine
// these numbers were first taken on).
//
// --codec-study: a short fine-tune of stories260K, unsplit and split (vanilla
// over the in-process transport) with the f32, f16, bf16 and int8 codecs, same
// seed and batches; held-out perplexity after each.
//
// Usage: split_step_bench --help
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_models.h"
#include "client/adamw.h"
#include "client/batching.h"
#include "client/dataset.h"
#include "client/evaluate.h"
#include "client/train_step.h"
#include "client/trainer.h"
#include "lora/adapter_set.h"
#include "model/gguf.h"
#include "model/model_loader.h"
#include "model/model_writer.h"
#include "model/tokenizer.h"
#include "split/split_client.h"
#include "split/split_server.h"
#include "split/tensor_wire.h"
#include "transport/inproc_channel.h"
#include "transport/serve_loop.h"
#include "transport/zmq_channel.h"
#include "util/args.h"

namespace cleave::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Options {
  std::vector<std::string> only;
  int steps = -1, warmup = -1;   // -1: the workload's default
  int threads = 1;
  std::string stories = "../shared/models/stories260K.gguf";
  std::string out;
  bool codec_study = false;
  std::string data = "../shared/data/medquad/medquad_cancergov.jsonl";
  int study_steps = 150;
  double study_clip = 0.0;   // 0: off (a split clips each side on its own; see codec_study)
  bool wire_only = false;
};

// ---- models and batches -----------------------------------------------------


// A random ~40M Llama, written as GGUF to a temporary directory and loaded
// with an int8 base like any other model file.
std::shared_ptr<LlamaModel> load_random_40m() {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("cleave-split-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "llama-40M.gguf").string();
  const LlamaConfig config = bench::random_llama_config("llama-40M");
  write_llama_gguf(path, config, random_llama_weights(config, 1234), nullptr);
  std::shared_ptr<LlamaModel> model = load_llama(path, BaseQuant::int8);
  std::filesystem::remove_all(dir);
  return model;
}

// Random tokens, every target scored.
data::Batch random_batch(int64_t vocab, int64_t B, int64_t T, uint64_t seed) {
  at::Tensor ids = at::randint(vocab, {B * T + 1}, at::make_generator<at::CPUGeneratorImpl>(seed), at::kInt);
  const int32_t* p = ids.data_ptr<int32_t>();
  data::Batch batch;
  batch.batch_size = B;
  batch.seq_len = T;
  batch.inputs.assign(p, p + B * T);
  batch.targets.assign(p + 1, p + B * T + 1);
  batch.weights.assign(static_cast<size_t>(B * T), 1.0f);
  batch.n_target_tokens = B * T;
  return batch;
}

// ---- a split server in its own thread, timing its compute -------------------

// The services' serve loop around SplitServer::handle, with the time spent in handle() summed.
class ServerThread {
 public:
  ServerThread(std::unique_ptr<split::SplitServer> server, std::unique_ptr<net::ServerChannel> channel,
               int threads)
      : server_(std::move(server)), channel_(std::move(channel)) {
    thread_ = std::thread([this, threads] {
      at::set_num_threads(threads);  // per thread: OpenMP's thread count is a per-thread setting
      net::ServeLoop loop;
      loop.poll_ms = 20;
      loop.log = [](const std::string& line) { std::cerr << "split server: " << line << '\n'; };
      loop.handle = [this](const net::PeerId& peer, const net::Bytes& request) {
        const auto start = Clock::now();
        net::Bytes reply = server_->handle(peer, request);
        busy_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
        return reply;
      };
      net::serve(*channel_, stop_, loop);
    });
  }
  ~ServerThread() {
    stop_ = true;
    thread_.join();
  }
  std::string endpoint() const { return channel_->endpoint(); }
  split::SplitServer& server() { return *server_; }
  double busy_seconds() const { return busy_ns_.load() * 1e-9; }

 private:
  std::unique_ptr<split::SplitServer> server_;
  std::unique_ptr<net::ServerChannel> channel_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> busy_ns_{0};
  std::thread thread_;
};

// A client channel that sums the time its owner blocks in recv().
class TimedChannel : public net::ClientChannel {
 public:
  explicit TimedChannel(std::unique_ptr<net::ClientChannel> inner) : inner_(std::move(inner)) {}
  void send(net::Bytes payload) override { inner_->send(std::move(payload)); }
  std::optional<net::Bytes> recv(net::Millis timeout) override {
    const auto start = Clock::now();
    std::optional<net::Bytes> reply = inner_->recv(timeout);
    waited_s_ += seconds_since(start);
    return reply;
  }
  void reconnect() override { inner_->reconnect(); }
  std::string describe() const override { return inner_->describe(); }
  double waited_seconds() const { return waited_s_; }

 private:
  std::unique_ptr<net::ClientChannel> inner_;
  double waited_s_ = 0;
};

// ---- one configuration that can take a training step ------------------------

enum class Transport { local, inproc, tcp };

struct Setup {
  std::string label;
  Transport transport = Transport::local;
  split::SplitMode mode = split::SplitMode::vanilla;
  wire::WireDType codec = wire::WireDType::F32;
  bool timed = true;   // false: one step, for its bytes only
  int hops = 1;        // 2: the split server relays blocks from kCutLayer + 1 on to a second one (multi-hop)
};

struct StepTimes {
  double step = 0, client = 0, server = 0, transport = 0;   // seconds
};

constexpr int32_t kCutLayer = 2;
constexpr double kLearningRate = 1e-4;
constexpr double kGradClip = 1.0;

class Runner {
 public:
  Runner(const Setup& setup, std::shared_ptr<const LlamaModel> model, const lora::AdapterSet& initial,
         net::InprocNetwork& network, int threads)
      : setup_(setup), model_(std::move(model)) {
    if (setup.transport == Transport::local) {
      adapters_ = initial.clone();
      step_ = std::make_unique<LocalTrainStep>(model_, adapters_);
    } else {
      split::SplitClientOptions options;
      options.client_id = "bench";
      options.mode = setup.mode;
      options.cut_layer = kCutLayer;
      options.activation_codec = setup.codec;
      options.gradient_codec = setup.codec;
      options.timeout_ms = 600000;
      const int64_t top = setup.mode == split::SplitMode::u_shaped ? model_->n_layers() - 1 : model_->n_layers();
      adapters_ = initial.subset([&](int64_t layer) { return layer < kCutLayer || layer >= top; });
      split::SplitServerOptions server_options;
      server_options.lora = initial.options();
      server_options.min_cut_layer = kCutLayer;
      const int32_t next_cut = kCutLayer + 1;
      if (setup.hops == 2) {
        // The second hop: blocks [kCutLayer + 1, ...) on its own thread, over the same transport.
        split::SplitServerOptions hop_options = server_options;
        hop_options.min_cut_layer = next_cut;
        auto hop = std::make_unique<split::SplitServer>(
            model_, hop_options, initial.subset([&](int64_t layer) { return layer >= next_cut; }),
            [](const std::string&) {});
        const std::string hop_name = "split-bench-hop-" + setup.label;
        second_hop_ = std::make_unique<ServerThread>(
            std::move(hop), setup.transport == Transport::tcp ? net::zmq_bind("tcp://127.0.0.1:0") : network.bind(hop_name),
            threads);
        server_options.next.address = setup.transport == Transport::tcp ? second_hop_->endpoint() : hop_name;
        server_options.next.cut_layer = next_cut;
        server_options.next.activation_codec = setup.codec;
        server_options.next.gradient_codec = setup.codec;
        server_options.next.timeout_ms = 600000;
      }
      auto server = std::make_unique<split::SplitServer>(
          model_, server_options,
          initial.subset([&](int64_t layer) { return layer >= kCutLayer && (setup.hops == 1 || layer < next_cut); }),
          [](const std::string&) {});
      if (setup.hops == 2) {
        server->connect_next_hop(setup.transport == Transport::tcp ? net::zmq_connect(server_options.next.address)
                                                                   : network.connect(server_options.next.address));
      }
      const std::string name = "split-bench-" + setup.label;
      std::unique_ptr<net::ServerChannel> server_channel =
          setup.transport == Transport::tcp ? net::zmq_bind("tcp://127.0.0.1:0") : network.bind(name);
      server_ = std::make_unique<ServerThread>(std::move(server), std::move(server_channel), threads);
      channel_ = std::make_unique<TimedChannel>(setup.transport == Transport::tcp
                                                    ? net::zmq_connect(server_->endpoint())
                                                    : network.connect(name));
      auto split_step = std::make_unique<split::SplitTrainStep>(model_, adapters_, *channel_, options);
      split_step->connect();
      split_ = split_step.get();
      step_ = std::move(split_step);
    }
    adapters_.set_training(true);
    optimizer_ = std::make_unique<AdamW>(adapters_.parameters(), AdamWOptions{});
  }

  const Setup& setup() const { return setup_; }

  StepTimes step(const data::Batch& batch, int64_t index) {
    const double waited0 = channel_ ? channel_->waited_seconds() : 0;
    const double busy0 = server_ ? server_->busy_seconds() : 0;
    const auto start = Clock::now();
    optimizer_->zero_grad();
    step_->forward_backward(batch, StepContext{index, 0, kLearningRate, kGradClip});
    clip_grad_norm(adapters_.parameters(), kGradClip);
    optimizer_->step(kLearningRate);
    StepTimes t;
    t.step = seconds_since(start);
    const double waited = channel_ ? channel_->waited_seconds() - waited0 : 0;
    t.server = server_ ? server_->busy_seconds() - busy0 : 0;
    t.client = t.step - waited;
    t.transport = waited - t.server;
    return t;
  }

  // Bytes per token of `message` sent (up) or received (down) by the client.
  double bytes_per_token(const std::string& message, wire::Direction direction, int64_t tokens) const {
    if (!split_) return 0;
    for (const wire::ByteCounter::Row& row : split_->bytes().rows()) {
      if (row.message_type != message) continue;
      const bool up = direction == wire::Direction::sent;
      const uint64_t n = up ? row.sent_messages : row.received_messages;
      const uint64_t bytes = up ? row.sent_bytes : row.received_bytes;
      return n ? static_cast<double>(bytes) / static_cast<double>(n) / static_cast<double>(tokens) : 0;
    }
    return 0;
  }

  // Up: forward (+ backward in U-shaped); down: their replies.
  std::pair<double, double> bytes_per_token(int64_t tokens) const {
    return {bytes_per_token("forward", wire::Direction::sent, tokens) +
                bytes_per_token("backward", wire::Direction::sent, tokens),
            bytes_per_token("forward_reply", wire::Direction::received, tokens) +
                bytes_per_token("backward_reply", wire::Direction::received, tokens)};
  }

  // Every adapter, the client's and the server's, as one set (for evaluation).
  lora::AdapterSet merged_adapters() const {
    lora::AdapterSet merged;
    merged.set_options(adapters_.options());
    for (const auto& [name, pair] : adapters_.pairs()) {
      merged.add(name, pair.a.detach().clone(), pair.b.detach().clone());
    }
    if (server_) {
      // The server's set also covers U-shaped clients' top blocks, untrained there.
      for (const auto& [name, pair] : server_->server().adapters_for("bench").pairs()) {
        if (adapters_.pairs().count(name) == 0) merged.add(name, pair.a.detach().clone(), pair.b.detach().clone());
      }
    }
    return merged;
  }

  TrainStep& train_step() { return *step_; }

 private:
  Setup setup_;
  std::shared_ptr<const LlamaModel> model_;
  lora::AdapterSet adapters_;
  std::unique_ptr<ServerThread> second_hop_;   // multi-hop: declared before server_, so stopped after it
  std::unique_ptr<ServerThread> server_;
  std::unique_ptr<TimedChannel> channel_;
  std::unique_ptr<TrainStep> step_;
  split::SplitTrainStep* split_ = nullptr;
  std::unique_ptr<AdamW> optimizer_;
};

// ---- the step-time benchmark ------------------------------------------------

struct Workload {
  std::string name;
  int64_t batch = 0, seq = 0;
  int steps = 0, warmup = 0;
};

const std::vector<Setup> kSetups = {
    {"local", Transport::local, split::SplitMode::vanilla, wire::WireDType::F32},
    {"split inproc f32", Transport::inproc, split::SplitMode::vanilla, wire::WireDType::F32},
    {"split tcp f32", Transport::tcp, split::SplitMode::vanilla, wire::WireDType::F32},
    {"u-shaped tcp f32", Transport::tcp, split::SplitMode::u_shaped, wire::WireDType::F32},
    // Multi-hop: a second split server takes over at kCutLayer + 1.
    {"split tcp f32, 2 hops", Transport::tcp, split::SplitMode::vanilla, wire::WireDType::F32, true, 2},
    {"u-shaped tcp f32, 2 hops", Transport::tcp, split::SplitMode::u_shaped, wire::WireDType::F32, true, 2},
    {"split tcp int8", Transport::tcp, split::SplitMode::vanilla, wire::WireDType::I8_ROWSCALE},
    // Their step differs from f32's only by the codec's cost (see the wire path table).
    {"split tcp f16", Transport::tcp, split::SplitMode::vanilla, wire::WireDType::F16, false},
    {"split tcp bf16", Transport::tcp, split::SplitMode::vanilla, wire::WireDType::BF16, false},
};

std::string fmt(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

void step_benchmark(const Workload& w, std::shared_ptr<const LlamaModel> model, const Options& options,
                    std::ostream& md) {
  lora::LoraOptions lora_options;   // r = 8, alpha = 16, all seven projections
  const lora::AdapterSet initial = lora::AdapterSet::create(*model, lora_options, 42);
  net::InprocNetwork network;
  std::vector<std::unique_ptr<Runner>> runners;
  for (const Setup& setup : kSetups) {
    runners.push_back(std::make_unique<Runner>(setup, model, initial, network, options.threads));
  }
  const int64_t tokens = w.batch * w.seq;
  std::vector<std::vector<StepTimes>> times(runners.size());
  for (int i = 0; i < w.warmup + w.steps; ++i) {
    const data::Batch batch = random_batch(model->config().vocab_size, w.batch, w.seq, 100 + i);
    // Rotate who goes first, so no configuration always follows the same one.
    for (size_t k = 0; k < runners.size(); ++k) {
      const size_t r = (k + static_cast<size_t>(i)) % runners.size();
      if (!runners[r]->setup().timed && i > 0) continue;
      const StepTimes t = runners[r]->step(batch, i);
      if (i >= w.warmup) times[r].push_back(t);
    }
    std::cerr << w.name << ": step " << i + 1 << "/" << w.warmup + w.steps << " done\n";
  }

  auto median_of = [&](size_t r, double StepTimes::*field) {
    std::vector<double> v;
    for (const StepTimes& t : times[r]) v.push_back(t.*field);
    return median(v);
  };
  const double local = median_of(0, &StepTimes::step);
  md << "\n### " << w.name << " (" << model->config().summary() << "), batch " << w.batch << " x " << w.seq
     << ", cut_layer " << kCutLayer << "\n\n"
     << "Medians of " << w.steps << " steps after " << w.warmup << " warmup; ms per step. \"paired\": the median "
        "over steps of (this step / the local step on the same batch in the same round).\n\n"
     << "| configuration | step ms | min ms | vs local | vs local, paired | client compute ms | server compute ms "
        "| transport + wait ms (wait - server) |\n"
     << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (size_t r = 0; r < runners.size(); ++r) {
    if (!runners[r]->setup().timed) continue;
    const bool split = runners[r]->setup().transport != Transport::local;
    const double step = median_of(r, &StepTimes::step);
    std::vector<double> paired, all;
    for (size_t i = 0; i < times[r].size(); ++i) {
      paired.push_back(times[r][i].step / times[0][i].step);
      all.push_back(times[r][i].step);
    }
    md << "| " << runners[r]->setup().label << " | " << fmt("%.1f", 1e3 * step) << " | "
       << fmt("%.1f", 1e3 * *std::min_element(all.begin(), all.end())) << " | " << fmt("%.3fx", step / local)
       << " | " << fmt("%.3fx", median(paired)) << " | " << fmt("%.1f", 1e3 * median_of(r, &StepTimes::client)) << " | "
       << (split ? fmt("%.1f", 1e3 * median_of(r, &StepTimes::server)) : "-") << " | "
       << (split ? fmt("%.1f", 1e3 * median_of(r, &StepTimes::transport)) : "-") << " |\n";
  }

  md << "\nBytes per token on the wire (whole frames: header, Cereal body, labels in vanilla), "
        "from the client's ByteCounter.\n\n"
     << "| configuration | up (activations) B/token | down (gradients) B/token | total B/token | "
        "f32 / this, up | f32 / this, down | f32 / this, total |\n"
     << "|---|---:|---:|---:|---:|---:|---:|\n";
  const auto f32 = runners[2]->bytes_per_token(tokens);
  for (size_t r = 1; r < runners.size(); ++r) {
    const auto [up, down] = runners[r]->bytes_per_token(tokens);
    const bool vanilla = runners[r]->setup().mode == split::SplitMode::vanilla;
    md << "| " << runners[r]->setup().label << " | " << fmt("%.1f", up) << " | " << fmt("%.1f", down) << " | "
       << fmt("%.1f", up + down) << " | " << (vanilla ? fmt("%.2fx", f32.first / up) : "-") << " | "
       << (vanilla ? fmt("%.2fx", f32.second / down) : "-") << " | "
       << (vanilla ? fmt("%.2fx", (f32.first + f32.second) / (up + down)) : "-") << " |\n";
  }
  md.flush();
}

// ---- the wire path alone -----------------------------------------------------

// What one vanilla step spends on the wire path outside the transport: the
// client's to_wire + pack of the forward request, the server's unpack +
// from_wire, and the same for the gradient reply. Single-threaded code, so
// this is less noisy than the step times.
void wire_path_benchmark(int64_t B, int64_t T, int64_t dim, std::ostream& md) {
  constexpr int kRepeats = 15;
  const data::Batch batch = random_batch(512, B, T, 5);
  at::Tensor smashed = at::randn({B, T, dim}, at::make_generator<at::CPUGeneratorImpl>(9));  // [B, T, dim]
  md << "\nWire path per step at [" << B << ", " << T << ", " << dim << "] (median of " << kRepeats
     << "; ms): activations = to_wire + pack on the client, unpack + from_wire on the server; "
        "gradients = the same for the reply.\n\n"
     << "| codec | activations encode | activations decode | gradients encode | gradients decode | total |\n"
     << "|---|---:|---:|---:|---:|---:|\n";
  const auto forward_type = static_cast<uint16_t>(split::MessageType::forward);
  const auto reply_type = static_cast<uint16_t>(split::MessageType::forward_reply);
  for (wire::WireDType codec : {wire::WireDType::F32, wire::WireDType::F16, wire::WireDType::BF16,
                                wire::WireDType::I8_ROWSCALE}) {
    std::vector<double> up_encode, up_decode, down_encode, down_decode;
    for (int i = 0; i < kRepeats; ++i) {
      auto start = Clock::now();
      split::ForwardRequest request;
      request.smashed = split::to_wire(smashed, codec);
      request.targets = batch.targets;
      request.weights = batch.weights;
      net::Bytes frame = wire::pack(forward_type, request);
      up_encode.push_back(seconds_since(start));
      start = Clock::now();
      const auto received = wire::unpack<split::ForwardRequest>(frame, forward_type, size_t{1} << 30);
      at::Tensor decoded = split::from_wire(received.smashed, {-1, -1, dim}, "smashed activations");
      up_decode.push_back(seconds_since(start));

      start = Clock::now();
      split::ForwardReply reply;
      reply.tensor = split::to_wire(decoded, codec);
      net::Bytes reply_frame = wire::pack(reply_type, reply);
      down_encode.push_back(seconds_since(start));
      start = Clock::now();
      const auto reply_received = wire::unpack<split::ForwardReply>(reply_frame, reply_type, size_t{1} << 30);
      at::Tensor grad = split::from_wire(reply_received.tensor, {B, T, dim}, "gradient");
      down_decode.push_back(seconds_since(start));
    }
    const double total = median(up_encode) + median(up_decode) + median(down_encode) + median(down_decode);
    md << "| " << wire::to_string(codec) << " | " << fmt("%.2f", 1e3 * median(up_encode)) << " | "
       << fmt("%.2f", 1e3 * median(up_decode)) << " | " << fmt("%.2f", 1e3 * median(down_encode)) << " | "
       << fmt("%.2f", 1e3 * median(down_decode)) << " | " << fmt("%.2f", 1e3 * total) << " |\n";
  }
  md.flush();
}

// ---- the codec study ---------------------------------------------------------

void codec_study(std::shared_ptr<const LlamaModel> model, const Options& options, std::ostream& md) {
  const Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(options.stories));
  std::vector<data::Example> examples = data::tokenize_records(tokenizer, data::read_records(options.data));
  // The last 10% of the file (in file order) is held out.
  const size_t held = std::max<size_t>(1, examples.size() / 10);
  std::vector<data::Example> held_out(examples.end() - static_cast<std::ptrdiff_t>(held), examples.end());
  examples.resize(examples.size() - held);
  data::BatchOptions batch_options;
  batch_options.batch_size = 16;
  batch_options.seq_len = 128;
  batch_options.seed = 3;
  const std::vector<data::Batch> eval_batches = data::eval_batches(held_out, batch_options);

  lora::LoraOptions lora_options;
  const lora::AdapterSet initial = lora::AdapterSet::create(*model, lora_options, 42);
  const double ppl_base = evaluate(*model, nullptr, eval_batches).perplexity();

  TrainOptions train;
  train.steps = options.study_steps;
  train.lr = 2e-3;
  train.warmup_steps = 10;
  // Off by default: a split step clips the client's and the server's adapter
  // gradients each to the norm on its own, the unsplit step clips them
  // together, which would differ from the unsplit run for a reason other
  // than the codec.
  train.grad_clip = options.study_clip;
  train.log_every = 0;

  struct Row {
    std::string label;
    double final_loss = 0, ppl = 0, seconds = 0;
  };
  std::vector<Row> rows;
  net::InprocNetwork network;
  const std::vector<Setup> setups = {
      {"unsplit (local)", Transport::local, split::SplitMode::vanilla, wire::WireDType::F32},
      {"split f32", Transport::inproc, split::SplitMode::vanilla, wire::WireDType::F32},
      {"split f16", Transport::inproc, split::SplitMode::vanilla, wire::WireDType::F16},
      {"split bf16", Transport::inproc, split::SplitMode::vanilla, wire::WireDType::BF16},
      {"split int8", Transport::inproc, split::SplitMode::vanilla, wire::WireDType::I8_ROWSCALE},
  };
  for (const Setup& setup : setups) {
    Runner runner(setup, model, initial, network, options.threads);
    data::BatchStream stream(examples, batch_options);
    Trainer trainer(runner.train_step(), train);
    const TrainReport report = trainer.run(stream);
    const lora::AdapterSet trained = runner.merged_adapters();
    const size_t tail = std::min<size_t>(10, report.losses.size());
    double final_loss = 0;
    for (size_t i = report.losses.size() - tail; i < report.losses.size(); ++i) final_loss += report.losses[i];
    rows.push_back({setup.label, final_loss / static_cast<double>(tail),
                    evaluate(*model, &trained, eval_batches).perplexity(), report.seconds});
    std::cerr << "codec study: " << setup.label << " done, held-out perplexity " << rows.back().ppl << "\n";
  }

  int64_t held_tokens = 0;
  for (const data::Batch& b : eval_batches) held_tokens += b.n_target_tokens;
  md << "\n### Codec cost: " << options.study_steps << " steps of stories260K, batch 16 x 128, lr 2e-3, "
     << (options.study_clip > 0 ? "gradient clipping at norm " + fmt("%g", options.study_clip) + " (per side in split runs)"
                                : std::string("no gradient clipping"))
     << "\n\n"
     << "Data: " << std::filesystem::path(options.data).filename().string() << ", " << examples.size()
     << " training examples, last " << held << " held out (" << held_tokens
     << " scored tokens). Same seed, adapters and batches for every run; split = vanilla, cut_layer "
     << kCutLayer << ", in-process transport, the codec on both activations and gradients. "
     << "Base model before fine-tuning: held-out perplexity " << fmt("%.4f", ppl_base) << ".\n\n"
     << "| run | mean loss, last 10 steps | held-out perplexity | vs unsplit | train s |\n"
     << "|---|---:|---:|---:|---:|\n";
  for (const Row& row : rows) {
    md << "| " << row.label << " | " << fmt("%.4f", row.final_loss) << " | " << fmt("%.4f", row.ppl) << " | "
       << fmt("%+.3f%%", 100.0 * (row.ppl / rows[0].ppl - 1.0)) << " | " << fmt("%.1f", row.seconds) << " |\n";
  }
  md.flush();
}

// ---- main ---------------------------------------------------------------------

ArgParser flags() {
  const Options defaults;
  return ArgParser("split_step_bench", "[--only stories260K|llama-40M] [options] | --codec-study [options]",
                   "The split-learning step against the local step (wire bytes, time per step);\n"
                   "with --codec-study, the held-out cost of each activation codec.")
      .value("--only", "MODEL", "stories260K or llama-40M (repeatable); both when absent")
      .value("--steps", "N", "timed steps (each workload has its own default)")
      .value("--warmup", "N", "untimed steps first (each workload has its own default)")
      .value("--threads", "N", "LibTorch threads").defaults_to(defaults.threads)
      .value("--stories", "PATH", "stories260K's GGUF").defaults_to(defaults.stories)
      .value("--out", "FILE", "also append the markdown tables to FILE")
      .toggle("--wire-only", "only the bytes on the wire, no timing")
      .toggle("--codec-study", "train stories260K with each codec and compare held-out perplexity")
      .value("--data", "FILE.jsonl", "--codec-study: the training data").defaults_to(defaults.data)
      .value("--study-steps", "N", "--codec-study: steps per run").defaults_to(defaults.study_steps)
      .value("--study-clip", "NORM", "--codec-study: gradient clipping norm; 0: off")
      .defaults_to(defaults.study_clip);
}

Options read_options(const ParsedArgs& args) {
  Options o;
  o.only = args.all("--only");
  if (args.has("--steps")) o.steps = static_cast<int>(args.get_int("--steps"));
  if (args.has("--warmup")) o.warmup = static_cast<int>(args.get_int("--warmup"));
  o.threads = static_cast<int>(args.get_int("--threads"));
  o.stories = args.require("--stories");
  o.out = args.get("--out").value_or("");
  o.wire_only = args.get_switch("--wire-only");
  o.codec_study = args.get_switch("--codec-study");
  o.data = args.require("--data");
  o.study_steps = static_cast<int>(args.get_int("--study-steps"));
  o.study_clip = args.get_double("--study-clip");
  if (o.threads < 1) throw UsageError("--threads must be >= 1");
  return o;
}

int run(const ParsedArgs& args) {
  const Options options = read_options(args);
  at::set_num_threads(options.threads);
  std::ofstream file;
  if (!options.out.empty()) {
    file.open(options.out, std::ios::app);
    if (!file) throw std::runtime_error("cannot open " + options.out + " for appending");
  }
  std::ostringstream md;
  auto flush = [&] {
    std::cout << md.str();
    if (file) file << md.str();
    md.str("");
  };
  const bool have_stories = access(options.stories.c_str(), R_OK) == 0;

  if (options.codec_study) {
    if (!have_stories) {
      std::cout << "codec study skipped: " << options.stories << " not found (pass --stories PATH)\n";
      return 0;
    }
    codec_study(load_llama(options.stories, BaseQuant::int8), options, md);
    flush();
    return 0;
  }

  md << "Threads: client and server threads each call at::set_num_threads(" << options.threads
     << "); hardware threads here: " << std::thread::hardware_concurrency() << ".\n";
  flush();
  const std::vector<Workload> workloads = {{"stories260K", 32, 256, 10, 1}, {"llama-40M", 8, 256, 4, 1}};
  for (Workload w : workloads) {
    if (!options.only.empty() && std::find(options.only.begin(), options.only.end(), w.name) == options.only.end())
      continue;
    if (options.steps > 0) w.steps = options.steps;
    if (options.warmup >= 0) w.warmup = options.warmup;
    if (w.name == "stories260K" && !have_stories) {
      md << "\nstories260K skipped: " << options.stories << " not found (pass --stories PATH)\n";
      flush();
      continue;
    }
    std::shared_ptr<LlamaModel> model =
        w.name == "stories260K" ? load_llama(options.stories, BaseQuant::int8) : load_random_40m();
    wire_path_benchmark(w.batch, w.seq, model->config().dim, md);
    flush();
    if (!options.wire_only) step_benchmark(w, model, options, md);
    flush();
  }
  return 0;
}

}  // namespace
}  // namespace cleave::bench

int main(int argc, char** argv) { return cleave::run_with_flags(cleave::bench::flags(), argc, argv, cleave::bench::run); }
