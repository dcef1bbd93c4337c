#include "aggregator/counted_channel.h"

#include "aggregator/federation_messages.h"

namespace cleave::aggregator {
namespace {

// The message's name, or "unreadable" for bytes without a frame header.
std::string name_of(const net::Bytes& frame) {
  try {
    return message_name(peek_message(frame));
  } catch (const wire::WireError&) {
    return "unreadable";
  }
}

}  // namespace

CountedClientChannel::CountedClientChannel(std::unique_ptr<net::ClientChannel> inner, wire::ByteCounter& bytes)
    : inner_(std::move(inner)), bytes_(bytes) {}

void CountedClientChannel::send(net::Bytes payload) {
  const std::string name = name_of(payload);
  const size_t size = payload.size();
  inner_->send(std::move(payload));
  bytes_.add(name, wire::Direction::sent, size);
}

std::optional<net::Bytes> CountedClientChannel::recv(net::Millis timeout) {
  std::optional<net::Bytes> reply = inner_->recv(timeout);
  if (reply) bytes_.add(name_of(*reply), wire::Direction::received, reply->size());
  return reply;
}

}  // namespace cleave::aggregator
