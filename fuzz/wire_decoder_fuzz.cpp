// libFuzzer target: arbitrary bytes into every decoder a peer's message
// reaches before any model code: the frame header (wire::peek), the body of
// every split and federation message type (wire::unpack, with the input's
// type field rewritten to each type in turn, so every layout sees every
// body), and wire tensors (wire::decode, both inside messages and as a bare
// body). A malformed input must throw wire::WireError and nothing else: any
// other exception, a crash or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "aggregator/federation_messages.h"
#include "secagg/secagg_messages.h"
#include "split/split_messages.h"
#include "wire/archive.h"
#include "wire/frame.h"
#include "wire/tensor.h"

namespace {

using namespace cleave;

constexpr size_t kMaxFrameBytes = 1 << 20;

void decode_tensor(const wire::WireTensor& tensor) {
  try {
    const std::vector<float> values = wire::decode(tensor);
    // decode() promises exactly product(shape) finite values.
    if (static_cast<int64_t>(values.size()) != wire::element_count(tensor.shape)) __builtin_trap();
  } catch (const wire::WireError&) {
  }
}

void decode_tensors(const split::ForwardRequest& m) { decode_tensor(m.smashed); }
void decode_tensors(const split::ForwardReply& m) { decode_tensor(m.tensor); }
void decode_tensors(const split::BackwardRequest& m) { decode_tensor(m.grad); }
void decode_tensors(const split::BackwardReply& m) { decode_tensor(m.grad); }
void decode_tensors(const split::GenerateInput& m) { decode_tensor(m.hidden); }
void decode_tensors(const split::GenerateOutput& m) { decode_tensor(m.tensor); }
void decode_tensors(const aggregator::RoundAssignment& m) {
  for (const auto& entry : m.adapters) decode_tensor(entry.second);
}
void decode_tensors(const aggregator::Update& m) {
  for (const auto& entry : m.delta) decode_tensor(entry.second);
}
template <class M>
void decode_tensors(const M&) {}

// Messages without std::map re-encode to the very bytes they were decoded
// from; a map drops duplicate keys (std::map semantics), so those cannot, nor
// can a message with optional trailing fields.
template <class M>
constexpr bool kReencodesExactly = true;
template <>
constexpr bool kReencodesExactly<aggregator::RoundAssignment> = false;
template <>
constexpr bool kReencodesExactly<aggregator::Update> = false;
// A Register frame from before lora_rank and lora_alpha decodes with them 0
// and re-encodes with them.
template <>
constexpr bool kReencodesExactly<aggregator::Register> = false;
template <>
constexpr bool kReencodesExactly<secagg::Shares> = false;
template <>
constexpr bool kReencodesExactly<secagg::PeerShares> = false;
template <>
constexpr bool kReencodesExactly<secagg::UnmaskRequest> = false;
template <>
constexpr bool kReencodesExactly<secagg::UnmaskShares> = false;

// Decodes `frame` as message M with the frame's type field set to `type`.
template <class M>
void unpack_as(net::Bytes& frame, uint16_t type) {
  frame[6] = static_cast<uint8_t>(type >> 8);
  frame[7] = static_cast<uint8_t>(type & 0xff);
  try {
    const M message = wire::unpack<M>(frame, type, kMaxFrameBytes);
    decode_tensors(message);
    // What decoded must encode back to the same bytes: the body was consumed
    // exactly (byte 8 is the body's endianness flag; we write little-endian).
    if (kReencodesExactly<M> && frame[wire::kFrameHeaderBytes] == 1 &&
        wire::pack(type, message) != frame) {
      __builtin_trap();
    }
  } catch (const wire::WireError&) {
  }
}

template <class M, class E>
void unpack_as(net::Bytes& frame, E type) {
  unpack_as<M>(frame, static_cast<uint16_t>(type));
}

void decode_bare_tensor(const uint8_t* data, size_t size) {
  wire::WireTensor tensor;
  try {
    wire::WireInputArchive archive(data, size);
    archive(tensor);
  } catch (const wire::WireError&) {
    return;
  } catch (const cereal::Exception&) {
    return;  // a bare body has no frame to turn cereal's errors into WireError
  }
  decode_tensor(tensor);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  net::Bytes frame(data, data + size);
  try {
    (void)wire::peek(frame);
  } catch (const wire::WireError&) {
  }
  decode_bare_tensor(data, size);
  if (size < wire::kFrameHeaderBytes) return 0;

  // A valid header, so every body reaches its decoder.
  frame[0] = 'C';
  frame[1] = 'V';
  frame[2] = 'L';
  frame[3] = 'E';
  frame[4] = 0;
  frame[5] = static_cast<uint8_t>(wire::kFrameVersion);

  using split::MessageType;
  unpack_as<split::Hello>(frame, MessageType::hello);
  unpack_as<split::HelloReply>(frame, MessageType::hello_reply);
  unpack_as<split::ForwardRequest>(frame, MessageType::forward);
  unpack_as<split::ForwardReply>(frame, MessageType::forward_reply);
  unpack_as<split::BackwardRequest>(frame, MessageType::backward);
  unpack_as<split::BackwardReply>(frame, MessageType::backward_reply);
  unpack_as<split::EndRound>(frame, MessageType::end_round);
  unpack_as<split::EndRoundReply>(frame, MessageType::end_round_reply);
  unpack_as<split::SyncRound>(frame, MessageType::sync_round);
  unpack_as<split::SyncRoundReply>(frame, MessageType::sync_round_reply);
  unpack_as<split::GenerateOpen>(frame, MessageType::generate_open);
  unpack_as<split::GenerateOpenReply>(frame, MessageType::generate_open_reply);
  unpack_as<split::GenerateInput>(frame, MessageType::generate_prefill);
  unpack_as<split::GenerateInput>(frame, MessageType::generate_step);
  unpack_as<split::GenerateOutput>(frame, MessageType::generate_reply);
  unpack_as<split::GenerateClose>(frame, MessageType::generate_close);
  unpack_as<split::GenerateCloseReply>(frame, MessageType::generate_close_reply);
  unpack_as<split::ErrorReply>(frame, MessageType::error);

  using aggregator::FederationMessage;
  unpack_as<aggregator::Register>(frame, FederationMessage::register_client);
  unpack_as<aggregator::RegisterReply>(frame, FederationMessage::register_reply);
  unpack_as<aggregator::RoundRequest>(frame, FederationMessage::round_request);
  unpack_as<aggregator::RoundAssignment>(frame, FederationMessage::round_assignment);
  unpack_as<aggregator::Wait>(frame, FederationMessage::wait);
  unpack_as<aggregator::Finished>(frame, FederationMessage::finished);
  unpack_as<aggregator::Update>(frame, FederationMessage::update);
  unpack_as<aggregator::UpdateAck>(frame, FederationMessage::update_ack);
  unpack_as<aggregator::FederationErrorReply>(frame, FederationMessage::error);

  // Secure aggregation's phases.
  unpack_as<secagg::Keys>(frame, FederationMessage::secagg_keys);
  unpack_as<secagg::Poll>(frame, FederationMessage::secagg_poll);
  unpack_as<secagg::PeerKeys>(frame, FederationMessage::secagg_peer_keys);
  unpack_as<secagg::Shares>(frame, FederationMessage::secagg_shares);
  unpack_as<secagg::PeerShares>(frame, FederationMessage::secagg_peer_shares);
  unpack_as<secagg::MaskedInput>(frame, FederationMessage::secagg_masked_input);
  unpack_as<secagg::ConsistencyCheck>(frame, FederationMessage::secagg_consistency_check);
  unpack_as<secagg::ConsistencySignature>(frame, FederationMessage::secagg_consistency_signature);
  unpack_as<secagg::UnmaskRequest>(frame, FederationMessage::secagg_unmask_request);
  unpack_as<secagg::UnmaskShares>(frame, FederationMessage::secagg_unmask_shares);
  unpack_as<secagg::Abort>(frame, FederationMessage::secagg_abort);
  unpack_as<secagg::Withdraw>(frame, FederationMessage::secagg_withdraw);
  return 0;
}
