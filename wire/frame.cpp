#include "wire/frame.h"

#include <cstdio>
#include <mutex>

namespace cleave::wire {
namespace {

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08X", value);
  return text;
}

// The four magic bytes as text when printable ("CVLE"), for error messages.
std::string magic_text(uint32_t magic) {
  std::string text;
  for (int shift = 24; shift >= 0; shift -= 8) {
    const char c = static_cast<char>((magic >> shift) & 0xff);
    if (c < 0x20 || c > 0x7e) return hex32(magic);
    text += c;
  }
  return hex32(magic) + " \"" + text + "\"";
}

uint32_t read_be32(const uint8_t* in) {
  return (static_cast<uint32_t>(in[0]) << 24) | (static_cast<uint32_t>(in[1]) << 16) |
         (static_cast<uint32_t>(in[2]) << 8) | static_cast<uint32_t>(in[3]);
}

uint16_t read_be16(const uint8_t* in) { return static_cast<uint16_t>((in[0] << 8) | in[1]); }

void write_be(net::Bytes& out, uint32_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

}  // namespace

FrameHeader peek(const net::Bytes& frame) {
  if (frame.size() < kFrameHeaderBytes)
    throw WireError("frame of " + std::to_string(frame.size()) + " bytes is shorter than the " +
                    std::to_string(kFrameHeaderBytes) + "-byte header");
  FrameHeader header;
  header.magic = read_be32(frame.data());
  header.version = read_be16(frame.data() + 4);
  header.type = read_be16(frame.data() + 6);
  if (header.magic != kFrameMagic)
    throw WireError("frame magic is " + magic_text(header.magic) + ", expected " + magic_text(kFrameMagic) +
                    ": the peer is not speaking cleave's protocol");
  if (header.version != kFrameVersion)
    throw WireError("frame version is " + std::to_string(header.version) + ", expected " +
                    std::to_string(kFrameVersion) + ": both ends must run the same cleave protocol version");
  return header;
}

namespace frame_detail {

void append_header(net::Bytes& frame, uint16_t type) {
  write_be(frame, kFrameMagic, 4);
  write_be(frame, kFrameVersion, 2);
  write_be(frame, type, 2);
}

void check_frame(const net::Bytes& frame, uint16_t expected_type, size_t max_bytes) {
  if (frame.size() > max_bytes)
    throw WireError("frame of " + std::to_string(frame.size()) + " bytes exceeds the limit of " +
                    std::to_string(max_bytes) + " bytes for message type " + std::to_string(expected_type));
  const FrameHeader header = peek(frame);
  if (header.type != expected_type)
    throw WireError("frame message type is " + std::to_string(header.type) + ", expected " +
                    std::to_string(expected_type) + ": the peer sent a different message than the protocol expects");
}

void rethrow_body_error(uint16_t type, const char* what) {
  throw WireError("malformed body in frame of message type " + std::to_string(type) + ": " + what);
}

void throw_trailing_bytes(uint16_t type, size_t trailing, size_t body_bytes) {
  throw WireError(std::to_string(trailing) + " unread bytes after the message (body of " +
                  std::to_string(body_bytes) + " bytes) in frame of message type " + std::to_string(type) +
                  ": sender and receiver disagree on the message layout");
}

}  // namespace frame_detail

void ByteCounter::add(const std::string& message_type, Direction direction, uint64_t bytes) {
  const auto slot = static_cast<size_t>(direction);
  {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    auto it = counts_.find(message_type);
    if (it != counts_.end()) {
      it->second->messages[slot].fetch_add(1, std::memory_order_relaxed);
      it->second->bytes[slot].fetch_add(bytes, std::memory_order_relaxed);
      return;
    }
  }
  std::unique_lock<std::shared_mutex> lock(mutex_);
  auto& counts = counts_[message_type];
  if (!counts) counts = std::make_unique<Counts>();
  counts->messages[slot].fetch_add(1, std::memory_order_relaxed);
  counts->bytes[slot].fetch_add(bytes, std::memory_order_relaxed);
}

std::vector<ByteCounter::Row> ByteCounter::rows() const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  std::vector<Row> rows;
  rows.reserve(counts_.size());
  for (const auto& [type, counts] : counts_) {
    Row row;
    row.message_type = type;
    row.sent_messages = counts->messages[0].load(std::memory_order_relaxed);
    row.sent_bytes = counts->bytes[0].load(std::memory_order_relaxed);
    row.received_messages = counts->messages[1].load(std::memory_order_relaxed);
    row.received_bytes = counts->bytes[1].load(std::memory_order_relaxed);
    rows.push_back(std::move(row));
  }
  return rows;
}

uint64_t ByteCounter::total_bytes(Direction direction) const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  uint64_t total = 0;
  for (const auto& entry : counts_) total += entry.second->bytes[static_cast<size_t>(direction)].load();
  return total;
}

uint64_t ByteCounter::total_messages(Direction direction) const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  uint64_t total = 0;
  for (const auto& entry : counts_) total += entry.second->messages[static_cast<size_t>(direction)].load();
  return total;
}

}  // namespace cleave::wire
