// A site's channel to the aggregator that counts what crosses it, by
// federation message and direction, into a wire::ByteCounter (exported as
// cleave_channel_bytes_total{channel="aggregator"} by `cleave client`).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "transport/channel.h"
#include "wire/frame.h"

namespace cleave::aggregator {

class CountedClientChannel : public net::ClientChannel {
 public:
  // `bytes` must outlive the channel.
  CountedClientChannel(std::unique_ptr<net::ClientChannel> inner, wire::ByteCounter& bytes);
  void send(net::Bytes payload) override;
  std::optional<net::Bytes> recv(net::Millis timeout) override;
  void reconnect() override { inner_->reconnect(); }
  std::string describe() const override { return inner_->describe(); }

 private:
  std::unique_ptr<net::ClientChannel> inner_;
  wire::ByteCounter& bytes_;
};

}  // namespace cleave::aggregator
