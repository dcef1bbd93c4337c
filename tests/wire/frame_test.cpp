#include "wire/frame.h"

#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/map.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/wire/test_support.h"
#include "wire/tensor.h"

namespace cleave::wire {
namespace {

constexpr uint16_t kActivationType = 3;
constexpr size_t kLimit = 1 << 20;

enum class Phase : uint8_t { forward = 1, backward = 2 };

// Shaped like a real split-learning message.
struct ActivationMessage {
  uint32_t round = 0;
  std::string client_id;
  Phase phase = Phase::forward;
  bool last_batch = false;
  std::vector<int32_t> token_ids;
  WireTensor smashed;                      // [batch, seq, hidden]
  std::vector<WireTensor> extras;
  std::map<std::string, double> metrics;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(round, client_id, phase, last_batch, token_ids, smashed, extras, metrics);
  }

  bool operator==(const ActivationMessage& o) const {
    auto same = [](const WireTensor& a, const WireTensor& b) {
      return a.dtype == b.dtype && a.shape == b.shape && a.data == b.data;
    };
    if (extras.size() != o.extras.size()) return false;
    for (size_t i = 0; i < extras.size(); ++i)
      if (!same(extras[i], o.extras[i])) return false;
    return round == o.round && client_id == o.client_id && phase == o.phase && last_batch == o.last_batch &&
           token_ids == o.token_ids && same(smashed, o.smashed) && metrics == o.metrics;
  }
};

struct Blob {
  std::vector<uint8_t> bytes;
  template <class Archive>
  void serialize(Archive& ar) { ar(bytes); }
};

struct Wide {
  std::vector<int64_t> values;
  template <class Archive>
  void serialize(Archive& ar) { ar(values); }
};

struct Names {
  std::vector<std::string> names;
  template <class Archive>
  void serialize(Archive& ar) { ar(names); }
};

struct Flag {
  bool on = false;
  template <class Archive>
  void serialize(Archive& ar) { ar(on); }
};

ActivationMessage sample_message() {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> hidden(2 * 3 * 8);
  for (auto& v : hidden) v = dist(rng);
  ActivationMessage msg;
  msg.round = 7;
  msg.client_id = "client-3";
  msg.phase = Phase::backward;
  msg.last_batch = true;
  msg.token_ids = {1, 42, 260, -1};
  msg.smashed = encode(hidden.data(), {2, 3, 8}, WireDType::F16);
  msg.extras.push_back(encode(hidden.data(), {6, 8}, WireDType::I8_ROWSCALE));
  msg.metrics = {{"loss", 2.5}, {"tokens", 48}};
  return msg;
}

// A frame of `type` whose body is `body` (written without any checks).
net::Bytes raw_frame(uint16_t type, const std::vector<uint8_t>& body) {
  const uint8_t header[kFrameHeaderBytes] = {0x43, 0x56, 0x4C, 0x45, 0x00, 0x01, static_cast<uint8_t>(type >> 8),
                                             static_cast<uint8_t>(type)};
  net::Bytes frame(kFrameHeaderBytes + body.size());
  std::copy(header, header + kFrameHeaderBytes, frame.begin());
  std::copy(body.begin(), body.end(), frame.begin() + kFrameHeaderBytes);
  return frame;
}

void append_u64(std::vector<uint8_t>& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

using test::error_of;

TEST(WireFrameTest, RoundTripsAMessage) {
  const ActivationMessage msg = sample_message();
  const net::Bytes frame = pack(kActivationType, msg);
  EXPECT_EQ(std::string(frame.begin(), frame.begin() + 4), "CVLE");
  const FrameHeader header = peek(frame);
  EXPECT_EQ(header.magic, kFrameMagic);
  EXPECT_EQ(header.version, kFrameVersion);
  EXPECT_EQ(header.type, kActivationType);
  EXPECT_TRUE(unpack<ActivationMessage>(frame, kActivationType, kLimit) == msg);
}

TEST(WireFrameTest, RoundTripsABareTensorOfEveryDType) {
  const std::vector<float> values = {0.5f, -1.25f, 3.0f, 0.0f, 8.0f, -2.0f};
  for (WireDType dtype : {WireDType::F32, WireDType::F16, WireDType::BF16, WireDType::I8_ROWSCALE}) {
    const WireTensor tensor = encode(values.data(), {2, 3}, dtype);
    const WireTensor back = unpack<WireTensor>(pack(1, tensor), 1, kLimit);
    EXPECT_EQ(back.dtype, dtype);
    EXPECT_EQ(back.shape, tensor.shape);
    EXPECT_EQ(back.data, tensor.data);
  }
}

TEST(WireFrameTest, BodyIsCerealPortableBinaryBothWays) {
  const ActivationMessage msg = sample_message();
  const net::Bytes frame = pack(kActivationType, msg);

  std::istringstream in(std::string(frame.begin() + kFrameHeaderBytes, frame.end()));
  cereal::PortableBinaryInputArchive cereal_in(in);
  ActivationMessage read_by_cereal;
  cereal_in(read_by_cereal);
  EXPECT_TRUE(read_by_cereal == msg);

  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive cereal_out(out);
    cereal_out(msg);
  }
  const std::string body = out.str();
  EXPECT_EQ(body, std::string(frame.begin() + kFrameHeaderBytes, frame.end()));
  EXPECT_TRUE(unpack<ActivationMessage>(raw_frame(kActivationType, {body.begin(), body.end()}), kActivationType,
                                        kLimit) == msg);
}

TEST(WireFrameTest, BadMagicVersionAndTypeNameBothValues) {
  const net::Bytes frame = pack(kActivationType, sample_message());

  net::Bytes bad_magic = frame;
  bad_magic[0] = 'X';
  std::string message = error_of([&] { unpack<ActivationMessage>(bad_magic, kActivationType, kLimit); });
  EXPECT_NE(message.find("0x58564C45"), std::string::npos) << message;
  EXPECT_NE(message.find("0x43564C45"), std::string::npos) << message;
  EXPECT_THROW(peek(bad_magic), WireError);

  net::Bytes bad_version = frame;
  bad_version[5] = 2;
  message = error_of([&] { unpack<ActivationMessage>(bad_version, kActivationType, kLimit); });
  EXPECT_NE(message.find("version is 2, expected 1"), std::string::npos) << message;

  message = error_of([&] { unpack<ActivationMessage>(frame, 5, kLimit); });
  EXPECT_NE(message.find("type is 3, expected 5"), std::string::npos) << message;
}

TEST(WireFrameTest, FramesAboveTheLimitAreRefused) {
  const net::Bytes frame = pack(kActivationType, sample_message());
  EXPECT_THROW(unpack<ActivationMessage>(frame, kActivationType, frame.size() - 1), WireError);
  EXPECT_NO_THROW(unpack<ActivationMessage>(frame, kActivationType, frame.size()));
}

TEST(WireFrameTest, TruncationAtEveryOffsetThrowsWireError) {
  const net::Bytes frame = pack(kActivationType, sample_message());
  ASSERT_GT(frame.size(), 200u);
  for (size_t length = 0; length < frame.size(); ++length) {
    const net::Bytes truncated(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(length));
    EXPECT_THROW(unpack<ActivationMessage>(truncated, kActivationType, kLimit), WireError) << "length " << length;
  }
}

TEST(WireFrameTest, TrailingBytesAreRefused) {
  net::Bytes frame = pack(kActivationType, sample_message());
  frame.push_back(0);
  const std::string message = error_of([&] { unpack<ActivationMessage>(frame, kActivationType, kLimit); });
  EXPECT_NE(message.find("1 unread bytes"), std::string::npos) << message;
}

TEST(WireFrameTest, LyingLengthPrefixesFailWithoutAllocating) {
  // Body: endianness byte, then a size prefix far beyond the bytes present.
  std::vector<uint8_t> body = {1};
  append_u64(body, uint64_t{1} << 60);
  body.insert(body.end(), 16, 0xEE);
  const net::Bytes frame = raw_frame(1, body);
  EXPECT_THROW(unpack<Blob>(frame, 1, kLimit), WireError);
  EXPECT_THROW(unpack<Wide>(frame, 1, kLimit), WireError);
  EXPECT_THROW(unpack<Names>(frame, 1, kLimit), WireError);
  EXPECT_THROW(unpack<WireTensor>(frame, 1, kLimit), WireError);

  // Just a little too long for int64 elements: 3 claimed, 16 bytes present.
  std::vector<uint8_t> wide_body = {1};
  append_u64(wide_body, 3);
  wide_body.insert(wide_body.end(), 16, 0);
  const std::string message = error_of([&] { unpack<Wide>(raw_frame(1, wide_body), 1, kLimit); });
  EXPECT_NE(message.find("vector of 3 elements"), std::string::npos) << message;
}

TEST(WireFrameTest, MalformedScalarsAreRefused) {
  EXPECT_TRUE(unpack<Flag>(raw_frame(1, {1, 1}), 1, kLimit).on);
  EXPECT_THROW(unpack<Flag>(raw_frame(1, {1, 2}), 1, kLimit), WireError);   // bool byte 2
  EXPECT_THROW(unpack<Flag>(raw_frame(1, {7, 1}), 1, kLimit), WireError);   // endianness byte 7

  // A WireTensor with an unknown dtype code.
  std::vector<uint8_t> body = {1, 1, 0, 0, 0, 9};   // endianness, class version 1, dtype 9
  append_u64(body, 0);
  append_u64(body, 0);
  const std::string message = error_of([&] { unpack<WireTensor>(raw_frame(1, body), 1, kLimit); });
  EXPECT_NE(message.find("unknown tensor dtype code 9"), std::string::npos) << message;
}

TEST(WireFrameTest, RandomCorruptionEitherParsesOrThrowsWireError) {
  const net::Bytes frame = pack(kActivationType, sample_message());
  std::mt19937 rng(99);
  std::uniform_int_distribution<size_t> position(kFrameHeaderBytes, frame.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  int rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    net::Bytes corrupt = frame;
    const int flips = 1 + trial % 4;
    for (int f = 0; f < flips; ++f) corrupt[position(rng)] = static_cast<uint8_t>(byte(rng));
    try {
      (void)unpack<ActivationMessage>(corrupt, kActivationType, kLimit);
    } catch (const WireError&) {
      ++rejected;
    } catch (const std::exception& e) {
      FAIL() << "trial " << trial << " threw a non-WireError: " << e.what();
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(WireFrameTest, ByteCounterCountsPerTypeAndDirectionAcrossThreads) {
  ByteCounter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        counter.add("activation", Direction::sent, 100);
        counter.add(t % 2 ? "gradient" : "activation", Direction::received, 10);
      }
    });
  }
  for (auto& t : threads) t.join();

  const auto rows = counter.rows();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].message_type, "activation");
  EXPECT_EQ(rows[0].sent_messages, 4000u);
  EXPECT_EQ(rows[0].sent_bytes, 400000u);
  EXPECT_EQ(rows[0].received_messages, 2000u);
  EXPECT_EQ(rows[1].message_type, "gradient");
  EXPECT_EQ(rows[1].sent_messages, 0u);
  EXPECT_EQ(rows[1].received_bytes, 20000u);
  EXPECT_EQ(counter.total_bytes(Direction::sent), 400000u);
  EXPECT_EQ(counter.total_bytes(Direction::received), 40000u);
  EXPECT_EQ(counter.total_messages(Direction::received), 4000u);
}

}  // namespace
}  // namespace cleave::wire
