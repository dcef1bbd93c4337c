// Encrypted (mutual TLS 1.3) vs plaintext ZeroMQ over tcp://127.0.0.1:
// one-way throughput and round-trip latency for 4 KiB, 1 MiB and 64 MiB
// messages, printed as a markdown table.
//
//   build/bin/secure_channel_bench [--quick] [--repeat N] [--only "1 MiB"]   (--help says more)
//
// Throughput: the client streams N messages, then waits for the server's
// acknowledgement of the last; bytes / elapsed. Latency: median round trip of
// an echoed message. A throw-away CA is made in a temporary directory.
// --repeat N measures each row N times, plaintext and TLS alternating, and
// keeps the best throughput and the best median round trip of each (on a
// shared machine the best run is the one least disturbed by other work).
//
// CPU: the process's user + system time per MiB streamed (all threads: ours
// and ZeroMQ's I/O threads, and the kernel's copies on our behalf). With the
// cost of AES-128-GCM alone (sealing and opening 16 KiB records of a 1 MiB
// buffer, measured in the same run) this gives a ceiling for TLS/plaintext on
// this machine: the encrypted stream needs at least the plaintext's CPU plus
// the cipher's, spread over at most all cores, so
//   ceiling = plaintext s/MiB / max(plaintext s/MiB, (plaintext CPU + AES) / cores).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <openssl/evp.h>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

#include "secure/ca.h"
#include "secure/tls_channel.h"
#include "transport/zmq_channel.h"
#include "util/args.h"

namespace {

using namespace cleave;
using Clock = std::chrono::steady_clock;

constexpr uint8_t kSink = 'S', kAck = 'A', kEcho = 'E';

struct Workload {
  const char* label;
  size_t bytes;
  int stream_count;   // messages per throughput run
  int echo_count;     // round trips per latency run
};

struct Result {
  double mib_per_s = 0;
  double rtt_ms = 0;
  double cpu_ms_per_mib = 0;   // process CPU time per MiB streamed
};

double process_cpu_seconds() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Milliseconds one core needs to seal and then open 1 MiB with AES-128-GCM in
// TLS-sized records (16 KiB, one tag each); the best of several passes.
double aes_gcm_ms_per_mib() {
  constexpr size_t kRecord = 16384, kBytes = size_t{1} << 20;
  std::vector<uint8_t> plain(kBytes, 7), sealed(kBytes), opened(kBytes);
  const uint8_t key[16] = {1}, iv[12] = {2};
  uint8_t tag[16];
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      &EVP_CIPHER_CTX_free);
  // The key schedule once per pass, a fresh nonce per record (as a TLS session does).
  auto pass = [&](bool encrypt, const uint8_t* in, uint8_t* out) {
    if ((encrypt ? EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_gcm(), nullptr, key, nullptr)
                 : EVP_DecryptInit_ex(ctx.get(), EVP_aes_128_gcm(), nullptr, key, nullptr)) != 1) {
      throw std::runtime_error("AES-128-GCM key setup failed in OpenSSL");
    }
    for (size_t at = 0; at < kBytes; at += kRecord) {
      int n = 0;
      const bool ok =
          (encrypt ? EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, nullptr, iv)
                   : EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, nullptr, iv)) == 1 &&
          (encrypt ? EVP_EncryptUpdate(ctx.get(), out + at, &n, in + at, kRecord)
                   : EVP_DecryptUpdate(ctx.get(), out + at, &n, in + at, kRecord)) == 1;
      if (!ok) throw std::runtime_error("AES-128-GCM failed in OpenSSL");
      if (encrypt) {
        EVP_EncryptFinal_ex(ctx.get(), out + at + n, &n);
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, sizeof tag, tag);
      } else {
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, sizeof tag, tag);
        (void)EVP_DecryptFinal_ex(ctx.get(), out + at + n, &n);  // tag of the last record only
      }
    }
  };
  double best = 1e9;
  for (int round = 0; round < 40; ++round) {
    const auto start = Clock::now();
    pass(true, plain.data(), sealed.data());
    pass(false, sealed.data(), opened.data());
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  if (opened != plain) throw std::runtime_error("AES-128-GCM round trip changed the data");
  return best;
}

// Serves `server` on a thread: counts sink messages, acknowledges 'A', echoes 'E'.
class BenchServer {
 public:
  explicit BenchServer(std::unique_ptr<net::ServerChannel> server)
      : server_(std::move(server)), endpoint_(server_->endpoint()), thread_([this] { serve(); }) {}
  ~BenchServer() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void serve() {
    while (!stop_) {
      auto envelope = server_->recv(net::Millis(50));
      if (!envelope || envelope->payload.empty()) continue;
      const uint8_t kind = envelope->payload[0];
      if (kind == kAck) server_->send(envelope->peer, net::Bytes{kAck});
      if (kind == kEcho) server_->send(envelope->peer, std::move(envelope->payload));
    }
  }
  std::unique_ptr<net::ServerChannel> server_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

net::Bytes payload(size_t bytes, uint8_t kind) {
  net::Bytes data(bytes);
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<uint8_t>(i * 131 + 7);
  data[0] = kind;
  return data;
}

net::Bytes must_recv(net::ClientChannel& client) {
  auto reply = client.recv(net::Millis(60000));
  if (!reply) throw std::runtime_error("benchmark: no reply within 60 s");
  return std::move(*reply);
}

Result measure(net::ClientChannel& client, const Workload& w) {
  Result result;
  const net::Bytes sink = payload(w.bytes, kSink);
  const net::Bytes echo = payload(w.bytes, kEcho);
  // Warm up: handshake, socket buffers, allocator.
  client.send(echo);
  must_recv(client);

  const auto start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  for (int i = 0; i < w.stream_count; ++i) client.send(sink);
  client.send(net::Bytes{kAck});
  must_recv(client);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double mib = static_cast<double>(w.bytes) * w.stream_count / (1 << 20);
  result.mib_per_s = mib / seconds;
  result.cpu_ms_per_mib = (process_cpu_seconds() - cpu_start) * 1000 / mib;

  std::vector<double> round_trips;
  for (int i = 0; i < w.echo_count; ++i) {
    const auto sent = Clock::now();
    client.send(echo);
    must_recv(client);
    round_trips.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
  }
  std::nth_element(round_trips.begin(), round_trips.begin() + round_trips.size() / 2,
                   round_trips.end());
  result.rtt_ms = round_trips[round_trips.size() / 2];
  return result;
}

void keep_best(Result& best, const Result& run) {
  if (best.mib_per_s == 0 || run.mib_per_s > best.mib_per_s) {
    best.mib_per_s = run.mib_per_s;
    best.cpu_ms_per_mib = run.cpu_ms_per_mib;
  }
  if (best.rtt_ms == 0 || run.rtt_ms < best.rtt_ms) best.rtt_ms = run.rtt_ms;
}

ArgParser flags() {
  return ArgParser("secure_channel_bench", "[--quick] [--repeat N] [--only \"1 MiB\"]",
                   "Mutual TLS 1.3 against plaintext ZeroMQ over tcp://127.0.0.1: throughput,\n"
                   "round trip and CPU per MiB for 4 KiB, 1 MiB and 64 MiB messages.")
      .toggle("--quick", "a tenth of the messages")
      .value("--repeat", "N", "measure each row N times, keep the best").defaults_to(1)
      .value("--only", "SIZE", "one row: \"4 KiB\", \"1 MiB\" or \"64 MiB\"");
}

int run(const ParsedArgs& args) {
  const bool quick = args.get_switch("--quick");
  const int64_t repeat = args.get_int("--repeat");
  if (repeat < 1) throw UsageError("--repeat must be >= 1");
  const std::string only = args.get("--only").value_or("");
  const int scale = quick ? 10 : 1;
  const std::vector<Workload> workloads = {
      {"4 KiB", 4096, 20000 / scale, 2000 / scale},
      {"1 MiB", 1 << 20, 300 / scale, 100 / scale},
      {"64 MiB", size_t{64} << 20, std::max(8 / scale, 2), std::max(4 / scale, 2)},
  };
  if (!only.empty() && std::none_of(workloads.begin(), workloads.end(), [&](const Workload& w) { return only == w.label; })) {
    throw UsageError("--only '" + only + "': expected \"4 KiB\", \"1 MiB\" or \"64 MiB\"");
  }
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("cleave-secure-bench-" + std::to_string(::getpid()));
  try {
    net::ChannelOptions channel;
    channel.max_message_bytes = int64_t{128} << 20;
    secure::ca_init((dir / "ca").string(), "bench-ca");
    const auto server_id =
        secure::ca_issue((dir / "ca").string(), secure::NodeRole::split_server, "split-0",
                         (dir / "nodes").string()).identity;
    const auto client_id = secure::ca_issue((dir / "ca").string(), secure::NodeRole::client,
                                            "site-a", (dir / "nodes").string()).identity;
    secure::SecureChannelOptions server_options;
    server_options.identity = server_id;
    server_options.allowed_peer_roles = {secure::NodeRole::client};
    secure::SecureChannelOptions client_options;
    client_options.identity = client_id;
    client_options.allowed_peer_roles = {secure::NodeRole::split_server};

    const double aes_ms = aes_gcm_ms_per_mib();
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    std::cout << "AES-128-GCM seal + open: " << aes_ms << " ms per MiB on one core; " << cores
              << " cores\n\n";
    std::cout << "| message | plaintext MiB/s | TLS MiB/s | TLS/plain throughput | plaintext RTT ms "
                 "| TLS RTT ms | TLS/plain RTT | plaintext CPU ms/MiB | TLS CPU ms/MiB "
                 "| ceiling TLS/plain |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (const Workload& w : workloads) {
      if (!only.empty() && only != w.label) continue;
      Result plain, tls;
      for (int64_t run = 0; run < repeat; ++run) {
        {
          BenchServer server(net::zmq_bind("tcp://127.0.0.1:0", channel));
          auto client = net::zmq_connect(server.endpoint(), channel);
          keep_best(plain, measure(*client, w));
        }
        {
          BenchServer server(std::make_unique<secure::SecureServerChannel>(
              net::zmq_bind("tcp://127.0.0.1:0", channel), server_options));
          secure::SecureClientChannel client(net::zmq_connect(server.endpoint(), channel),
                                             client_options);
          keep_best(tls, measure(client, w));
        }
      }
      const double plain_ms = 1000 / plain.mib_per_s;  // wall ms per MiB
      const double ceiling = plain_ms / std::max(plain_ms, (plain.cpu_ms_per_mib + aes_ms) / cores);
      char row[320];
      std::snprintf(row, sizeof row,
                    "| %s | %.0f | %.0f | %.2f | %.3f | %.3f | %.2f | %.3f | %.3f | %.2f |\n",
                    w.label, plain.mib_per_s, tls.mib_per_s, tls.mib_per_s / plain.mib_per_s,
                    plain.rtt_ms, tls.rtt_ms, tls.rtt_ms / plain.rtt_ms, plain.cpu_ms_per_mib,
                    tls.cpu_ms_per_mib, ceiling);
      std::cout << row << std::flush;
    }
  } catch (const std::exception& error) {
    std::cerr << "secure_channel_bench: " << error.what() << '\n';
    fs::remove_all(dir);
    return 1;
  }
  fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_with_flags(flags(), argc, argv, run); }
