// Wire frames: what split/, aggregator/ and secure/ put into a channel message.
//
//   offset 0  uint32 magic 0x43564C45 ("CVLE")   } header, network byte order
//   offset 4  uint16 version (1)                 } so a hex dump starts
//   offset 6  uint16 message type                } with "CVLE"
//   offset 8  body: the message in cereal's PortableBinary layout
//             (wire/archive.h), to the last byte of the frame
//
// Message types are plain structs with a cereal serialize (or save/load)
// function over fixed-width fields, std::vector, std::string, std::map and
// WireTensor. Message type numbers are owned by the protocol that uses them.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "transport/channel.h"
#include "wire/archive.h"
#include "wire/error.h"

namespace cleave::wire {

constexpr uint32_t kFrameMagic = 0x43564C45;   // "CVLE"
constexpr uint16_t kFrameVersion = 1;
constexpr size_t kFrameHeaderBytes = 8;

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint16_t version = kFrameVersion;
  uint16_t type = 0;
};

// Reads and checks the header (size, magic, version) so a receiver can
// dispatch on `type`. Throws WireError naming the expected and received values.
FrameHeader peek(const net::Bytes& frame);

namespace frame_detail {
void append_header(net::Bytes& frame, uint16_t type);
// peek() plus the size limit and the expected type.
void check_frame(const net::Bytes& frame, uint16_t expected_type, size_t max_bytes);
[[noreturn]] void rethrow_body_error(uint16_t type, const char* what);
[[noreturn]] void throw_trailing_bytes(uint16_t type, size_t trailing, size_t body_bytes);
}  // namespace frame_detail

// Sizes the body first (a counting pass, no copies) so the frame is
// allocated once.
template <class M>
net::Bytes pack(uint16_t type, const M& msg) {
  size_t body_bytes = 0;
  {
    WireOutputArchive counter(body_bytes);
    counter(msg);
  }
  net::Bytes frame;
  frame.reserve(kFrameHeaderBytes + body_bytes);
  frame_detail::append_header(frame, type);
  WireOutputArchive archive(frame);
  archive(msg);
  return frame;
}

// Checks size (<= max_bytes), magic, version and type, then reads the body,
// which must be consumed exactly. Every malformed input throws WireError.
template <class M>
M unpack(const net::Bytes& frame, uint16_t expected_type, size_t max_bytes) {
  frame_detail::check_frame(frame, expected_type, max_bytes);
  M msg{};
  size_t unread = 0;
  try {
    WireInputArchive archive(frame.data() + kFrameHeaderBytes, frame.size() - kFrameHeaderBytes);
    archive(msg);
    unread = archive.remaining();
  } catch (const cereal::Exception& e) {
    frame_detail::rethrow_body_error(expected_type, e.what());
  } catch (const WireError& e) {
    frame_detail::rethrow_body_error(expected_type, e.what());
  }
  if (unread != 0) frame_detail::throw_trailing_bytes(expected_type, unread, frame.size() - kFrameHeaderBytes);
  return msg;
}

// Traffic per message type name and direction, for benchmarks. Thread-safe:
// add() from any thread; counters are atomics, the name table a shared lock.
enum class Direction : uint8_t { sent = 0, received = 1 };

struct ByteCounter {
 public:
  struct Row {
    std::string message_type;
    uint64_t sent_messages = 0;
    uint64_t sent_bytes = 0;
    uint64_t received_messages = 0;
    uint64_t received_bytes = 0;
  };

  void add(const std::string& message_type, Direction direction, uint64_t bytes);
  std::vector<Row> rows() const;                  // sorted by message type
  uint64_t total_bytes(Direction direction) const;
  uint64_t total_messages(Direction direction) const;

 private:
  struct Counts {
    std::array<std::atomic<uint64_t>, 2> messages{};
    std::array<std::atomic<uint64_t>, 2> bytes{};
  };

  mutable std::shared_mutex mutex_;
  std::map<std::string, std::unique_ptr<Counts>> counts_;
};

}  // namespace cleave::wire
