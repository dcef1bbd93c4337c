// A split server on tcp://127.0.0.1:0 (or another channel) in its own thread, for split tests.
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <memory>
#include <thread>

#include "client/batching.h"
#include "lora/adapter_set.h"
#include "split/split_server.h"
#include "tests/support/device_fixture.h"
#include "transport/zmq_channel.h"

namespace cleave::test {

class ServerThread {
 public:
  explicit ServerThread(std::unique_ptr<split::SplitServer> server)
      : ServerThread(std::move(server), net::zmq_bind("tcp://127.0.0.1:0")) {}
  // Serving on `channel` (e.g. an in-process one).
  ServerThread(std::unique_ptr<split::SplitServer> server, std::unique_ptr<net::ServerChannel> channel)
      : server_(std::move(server)), channel_(std::move(channel)) {
    thread_ = std::thread([this] { server_->serve(*channel_, stop_, 20); });
  }
  ~ServerThread() {
    stop_ = true;
    thread_.join();
  }
  std::string endpoint() const { return channel_->endpoint(); }
  split::SplitServer& server() { return *server_; }

 private:
  std::unique_ptr<split::SplitServer> server_;
  std::unique_ptr<net::ServerChannel> channel_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A deterministic batch of random tokens (the device tests' helper).
using device::random_batch;

inline void randomize_b(lora::AdapterSet& set, uint64_t seed) {
  at::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& [name, pair] : set.pairs()) pair.b.normal_(0.0, 0.05, gen);
}

// max |a - b| / max |b| over matching tensors.
inline double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const double scale = std::max(b.abs().max().item<double>(), 1e-30);
  return (a - b).abs().max().item<double>() / scale;
}

}  // namespace cleave::test
