// Closing a round on a split server (SFL-V1: the server averages its
// per-client adapter copies), so a round means the same on both sides. The
// aggregator calls close(round) after it has aggregated and checkpointed the
// round; the split server answers a repeated close of the round it just
// closed without averaging again, so resending after a lost reply, or after
// an aggregator restart, is safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "split/split_messages.h"
#include "transport/channel.h"
#include "util/log.h"

namespace cleave::aggregator {

struct SplitCloseOptions {
  int64_t timeout_ms = 30000;   // per attempt
  int max_attempts = 5;
  int64_t backoff_ms = 200;     // doubled after each failed attempt, capped at max_backoff_ms
  int64_t max_backoff_ms = 5000;
  size_t max_message_bytes = 1u << 20;
  Log log = Log::silent();                     // each retry, with why, as a warning
  // aggregator::strategy_signature of the aggregator's strategy, which an
  // SFL-V1 split server checks against its own; "" : not checked.
  std::string strategy;
};

class SplitRoundCloser {
 public:
  virtual ~SplitRoundCloser() = default;
  // Closes `round` with the sites whose updates the aggregator accepted and
  // the weights it gave them.
  // Returns the clients the split server averaged (0 for a repeated close).
  // Throws std::runtime_error when the server refuses or stays silent.
  virtual uint32_t close(uint32_t round, const split::RoundSites& participants) = 0;
  // On start and resume: brings the server to `round` (split::SyncRound;
  // `participants` closed round - 1). Returns the round the server was in and
  // the clients it averaged if it still had round - 1 to close.
  struct Synced {
    uint32_t previous_round = 0;
    uint32_t clients_averaged = 0;
  };
  virtual Synced sync(uint32_t round, const split::RoundSites& participants) = 0;
  // The flag that ends a wait or retry at once (net::RequestStopped): the
  // service's, set by SIGTERM. nullptr: none.
  virtual void set_stop(const std::atomic<bool>* stop) { (void)stop; }
  virtual std::string describe() const = 0;
};

// Sends split::EndRound over a client channel and waits for EndRoundReply,
// retrying with backoff and a reconnect when nothing comes back.
class ChannelSplitRoundCloser : public SplitRoundCloser {
 public:
  ChannelSplitRoundCloser(std::unique_ptr<net::ClientChannel> channel, SplitCloseOptions options = {});
  uint32_t close(uint32_t round, const split::RoundSites& participants) override;
  Synced sync(uint32_t round, const split::RoundSites& participants) override;
  void set_stop(const std::atomic<bool>* stop) override { stop_ = stop; }
  std::string describe() const override { return channel_->describe(); }

 private:
  // Sends `request` until a reply of `reply_type` that `matches` arrives;
  // throws naming `what` when the server refuses or stays silent.
  net::Bytes request(const net::Bytes& request, uint16_t reply_type,
                     const std::function<bool(const net::Bytes&)>& matches, const std::string& what);

  std::unique_ptr<net::ClientChannel> channel_;
  SplitCloseOptions options_;
  const std::atomic<bool>* stop_ = nullptr;
};

// Opens a channel to a split server endpoint (zmq_connect in a deployment, an
// InprocNetwork's connect in a simulation).
using ChannelFactory = std::function<std::unique_ptr<net::ClientChannel>(const std::string& endpoint)>;

}  // namespace cleave::aggregator
