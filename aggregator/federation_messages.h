// Messages between federated clients (sites) and the aggregator. Each travels
// as a wire frame (wire/frame.h: magic, version, type) with a Cereal
// body; type ids live in 0x02xx (split owns 0x01xx).
//
// The protocol is client-pull: a site registers, then polls "what should I
// do?" and gets a round assignment, a wait, or "finished"; after local
// training it sends its update. The aggregator only ever answers requests, so
// it never has to reach a site (DEALER/ROUTER through NAT'd hospital networks).
//
//   site                              aggregator
//   Register{id, fingerprint, n, blocks, lora rank and alpha} -> RegisterReply{round, rounds}
//   RoundRequest{id}             ---> RoundAssignment | Wait | Finished
//   Update{id, round, delta}     ---> UpdateAck{accepted, reason}
//   anything malformed           ---> FederationErrorReply{message}
//
// Under secure aggregation the assignment carries secagg::RoundParams and
// the update is replaced by the protocol's phases (secagg/secagg_messages.h):
//   Keys --> ack;  Poll{1} --> PeerKeys | Wait | Abort
//   Shares --> ack; Poll{2} --> PeerShares | Wait | Abort
//   MaskedInput --> ack; Poll{4} --> ConsistencyCheck | Wait | Abort
//   ConsistencySignature --> ack; Poll{3} --> UnmaskRequest | Wait | Abort
//   UnmaskShares --> ack
//   Withdraw (at any phase: this site sends nothing more) --> ack
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <type_traits>

#include "secagg/round_params.h"
#include "wire/frame.h"
#include "wire/tensor.h"

namespace cleave::aggregator {

enum class FederationMessage : uint16_t {
  register_client = 0x0201,
  register_reply = 0x0202,
  round_request = 0x0203,
  round_assignment = 0x0204,
  wait = 0x0205,
  finished = 0x0206,
  update = 0x0207,
  update_ack = 0x0208,
  // Secure aggregation (secagg/secagg_messages.h).
  secagg_keys = 0x0210,
  secagg_poll = 0x0211,
  secagg_peer_keys = 0x0212,
  secagg_shares = 0x0213,
  secagg_peer_shares = 0x0214,
  secagg_masked_input = 0x0215,
  secagg_unmask_request = 0x0216,
  secagg_unmask_shares = 0x0217,
  secagg_abort = 0x0218,
  secagg_withdraw = 0x0219,
  secagg_consistency_check = 0x021A,
  secagg_consistency_signature = 0x021B,
  error = 0x02FF,
};
const char* message_name(FederationMessage type);

// Adapter tensors on the wire, keyed like lora::NamedTensors
// ("blk.0.attn_q.weight.lora_a").
using WireTensors = std::map<std::string, wire::WireTensor>;

struct Register {
  std::string client_id;         // 1..128 printable characters, unique per site
  std::string base_fingerprint;  // LlamaModel::base_fingerprint() of the site's base model
  int64_t num_samples = 0;       // training examples at the site (informational)
  uint8_t layout = 0;            // the site's blocks: split::SiteLayout,
  int32_t cut_layer = 0;         // cut_layer and top_cut (split::SiteBlocks)
  int32_t top_cut = 0;
  // The site's lora.rank and lora.alpha; 0: the aggregator's. Under
  // lora.aggregation product a site may train at a lower rank (heterogeneous
  // ranks); otherwise they must be the aggregator's. Absent from the frames of
  // sites built before they existed, which then count as the aggregator's.
  int32_t lora_rank = 0;
  double lora_alpha = 0;
  template <class Archive>
  void save(Archive& ar) const {
    ar(client_id, base_fingerprint, num_samples, layout, cut_layer, top_cut, lora_rank, lora_alpha);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(client_id, base_fingerprint, num_samples, layout, cut_layer, top_cut);
    if constexpr (std::is_same_v<Archive, wire::WireInputArchive>) {
      if (ar.remaining() == 0) return;
    }
    ar(lora_rank, lora_alpha);
  }
};

struct RegisterReply {
  uint32_t round = 0;            // the aggregator's current round
  uint32_t total_rounds = 0;
  template <class Archive>
  void serialize(Archive& ar) { ar(round, total_rounds); }
};

struct RoundRequest {
  std::string client_id;
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id); }
};

// How a sampled site trains in one round (aggregator::ClientConfig plus the
// aggregator-wide learning rate).
struct RoundConfig {
  int32_t local_steps = 0;       // 0: the site's own default
  double proximal_mu = 0;        // FedProx; 0: plain local training
  double lr = 0;                 // 0: the site's own learning rate
  double clip_norm = 0;          // > 0 (aggregator.dp): clip the whole delta to this L2 norm before sending
  template <class Archive>
  void serialize(Archive& ar) { ar(local_steps, proximal_mu, lr, clip_norm); }
};

struct RoundAssignment {
  uint32_t round = 0;
  WireTensors adapters;          // the global client-side adapters, f32
  RoundConfig config;
  int64_t deadline_ms = 0;       // time left to report, from when this was sent
  secagg::RoundParams secure;    // enabled: report through secure aggregation, not Update
  template <class Archive>
  void serialize(Archive& ar) { ar(round, adapters, config, deadline_ms, secure); }
};

struct Wait {
  uint32_t retry_after_ms = 0;
  template <class Archive>
  void serialize(Archive& ar) { ar(retry_after_ms); }
};

struct Finished {
  uint32_t rounds_completed = 0;
  bool failed = false;           // the run stopped early (reason says why)
  std::string reason;
  template <class Archive>
  void serialize(Archive& ar) { ar(rounds_completed, failed, reason); }
};

struct Update {
  std::string client_id;
  uint32_t round = 0;
  WireTensors delta;             // local adapters - the round's global adapters
  int64_t num_samples = 0;       // FedAvg weight: examples behind the delta
  std::map<std::string, double> metrics;   // e.g. train_loss, eval_perplexity
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, round, delta, num_samples, metrics); }
};

struct UpdateAck {
  uint32_t round = 0;
  bool accepted = false;
  std::string reason;            // why it was rejected; empty when accepted
  template <class Archive>
  void serialize(Archive& ar) { ar(round, accepted, reason); }
};

struct FederationErrorReply {
  std::string message;
  template <class Archive>
  void serialize(Archive& ar) { ar(message); }
};

template <class M>
net::Bytes pack_message(FederationMessage type, const M& message) {
  return wire::pack(static_cast<uint16_t>(type), message);
}

// Throws wire::WireError for a frame that is not a well-formed `type`.
template <class M>
M unpack_message(const net::Bytes& frame, FederationMessage type, size_t max_bytes) {
  return wire::unpack<M>(frame, static_cast<uint16_t>(type), max_bytes);
}

// The frame's type (magic and version checked; throws wire::WireError).
inline FederationMessage peek_message(const net::Bytes& frame) {
  return static_cast<FederationMessage>(wire::peek(frame).type);
}

}  // namespace cleave::aggregator
