// Messages between a split client and the split server. Each travels as a
// wire frame (wire/frame.h: magic, version, type) with a Cereal body.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "wire/tensor.h"

namespace cleave::split {

enum class MessageType : uint16_t {
  hello = 0x0101,
  hello_reply = 0x0102,
  forward = 0x0103,
  forward_reply = 0x0104,
  backward = 0x0105,
  backward_reply = 0x0106,
  end_round = 0x0107,
  end_round_reply = 0x0108,
  sync_round = 0x0109,
  sync_round_reply = 0x010A,
  generate_open = 0x0111,
  generate_open_reply = 0x0112,
  generate_prefill = 0x0113,
  generate_step = 0x0114,
  generate_reply = 0x0115,
  generate_close = 0x0116,
  generate_close_reply = 0x0117,
  error = 0x01FF,
};
const char* message_name(MessageType type);

enum class SplitMode : uint8_t { vanilla = 0, u_shaped = 1 };

// Identifies one training step of one client; a repeated request with the
// same key is answered from the stored reply instead of being applied twice.
struct StepKey {
  std::string client_id;
  uint32_t round = 0;
  uint64_t step = 0;
  bool operator==(const StepKey& o) const {
    return client_id == o.client_id && round == o.round && step == o.step;
  }
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, round, step); }
};

struct Hello {
  std::string client_id;
  std::string base_fingerprint;   // LlamaModel::base_fingerprint() of the client's base model
  uint8_t mode = 0;               // SplitMode
  int32_t cut_layer = 0;          // client runs blocks [0, cut_layer)
  int32_t top_cut = 0;            // u_shaped: server runs [cut_layer, top_cut)
  uint8_t activation_codec = 0;   // wire::WireDType of smashed activations
  uint8_t gradient_codec = 0;     // wire::WireDType of gradients
  template <class Archive>
  void serialize(Archive& ar) {
    ar(client_id, base_fingerprint, mode, cut_layer, top_cut, activation_codec, gradient_codec);
  }
};

struct HelloReply {
  uint32_t round = 0;             // the server's current round
  std::string server_fingerprint;
  template <class Archive>
  void serialize(Archive& ar) { ar(round, server_fingerprint); }
};

// Smashed activations at the cut (and, in vanilla mode, the labels).
struct ForwardRequest {
  StepKey key;
  wire::WireTensor smashed;          // [B, T, dim]
  std::vector<int32_t> targets;      // vanilla: [B*T]; u_shaped: empty
  std::vector<float> weights;        // vanilla: [B*T]; u_shaped: empty
  double lr = 0;                     // the client's learning rate for this step
  double grad_clip = 0;              // max global norm of the server's adapter gradients
  template <class Archive>
  void serialize(Archive& ar) { ar(key, smashed, targets, weights, lr, grad_clip); }
};

// vanilla: d(loss)/d(smashed) and the loss. u_shaped: activations at top_cut.
struct ForwardReply {
  StepKey key;
  double loss = 0;
  int64_t n_scored = 0;
  wire::WireTensor tensor;
  template <class Archive>
  void serialize(Archive& ar) { ar(key, loss, n_scored, tensor); }
};

// u_shaped only: the gradient of the activations the server returned.
struct BackwardRequest {
  StepKey key;
  wire::WireTensor grad;             // [B, T, dim]
  template <class Archive>
  void serialize(Archive& ar) { ar(key, grad); }
};

struct BackwardReply {
  StepKey key;
  wire::WireTensor grad;             // d(loss)/d(smashed) [B, T, dim]
  template <class Archive>
  void serialize(Archive& ar) { ar(key, grad); }
};

// Closes a round on the server: SFL-V1 averages the per-client server-side
// adapters of the clients that trained in it and are among `participants`
// (the sites whose updates the aggregator accepted; empty: every client that
// trained). Copies of the others are dropped.
// The sites a round closes with: those whose updates the aggregator accepted,
// and the weight it gave each one's update (FedAvg: the site's training
// samples). SFL-V1 averages the server-side copies with the same weights, so
// the two parts of the model are averaged alike. Empty weights: equal (under
// DP, whose mean weighs every site alike). No ids: every client that trained.
struct RoundSites {
  std::vector<std::string> ids;
  std::vector<double> weights;    // empty, or one per id, each > 0
  template <class Archive>
  void serialize(Archive& ar) { ar(ids, weights); }
};

struct EndRound {
  uint32_t round = 0;
  RoundSites participants;
  // aggregator::strategy_signature of the aggregator's strategy: an SFL-V1
  // server aggregating otherwise refuses to close. Empty: not checked.
  std::string strategy;
  template <class Archive>
  void serialize(Archive& ar) { ar(round, participants, strategy); }
};

struct EndRoundReply {
  uint32_t round = 0;
  uint32_t clients_averaged = 0;
  template <class Archive>
  void serialize(Archive& ar) { ar(round, clients_averaged); }
};

// Sent by the aggregator when it starts or resumes: "the federation's next
// round is `round`; round - 1 closed with `participants`". A server in that
// round does nothing; one still in round - 1 closes it with the participants
// (the aggregator died between its checkpoint and EndRound); one in any
// other round (a restarted server with an older checkpoint, a stale one from
// another run) drops its unfinished per-client copies and moves to `round`.
struct SyncRound {
  uint32_t round = 0;
  RoundSites participants;
  std::string strategy;   // as in EndRound
  template <class Archive>
  void serialize(Archive& ar) { ar(round, participants, strategy); }
};

struct SyncRoundReply {
  uint32_t previous_round = 0;   // where the server was
  uint32_t round = 0;            // where it is now (SyncRound.round)
  uint32_t clients_averaged = 0; // when it closed round - 1
  template <class Archive>
  void serialize(Archive& ar) { ar(previous_round, round, clients_averaged); }
};

// Split inference: a site generates text with its blocks here and the
// server's in a generation session. It opens one (GenerateOpen), feeds the
// prompt's activations at the cut in one prefill, then one position per
// step, and closes it. The server keeps the session's KV cache for its
// blocks; only activations (and in vanilla the last position's logits)
// cross the wire. Every request starts with the site's id, which the TLS
// policy binds to its certificate; a session answers only the site that
// opened it.
enum class GenerationAdapters : uint8_t {
  global = 0,   // the server's global adapters (SFL-V1: the last round's average; SFL-V2: the shared copy)
  own = 1,      // SFL-V1: the site's own copy, as trained in the server's current round
};

struct GenerateOpen {
  std::string client_id;
  std::string base_fingerprint;   // as in Hello
  uint8_t mode = 0;               // SplitMode
  int32_t cut_layer = 0;          // the server runs [cut_layer, top_cut) (u_shaped) or [cut_layer, L)
  int32_t top_cut = 0;
  uint8_t activation_codec = 0;   // wire::WireDType of the activations (and logits) both ways
  uint8_t adapters = 0;           // GenerationAdapters
  int32_t max_positions = 0;      // the session's KV cache: prompt and generated tokens at most
  // The base tensors the site expects the server to adapt (its lora.targets
  // over the server's blocks): the session is refused, naming them, when
  // the server's adapters lack any.
  std::vector<std::string> expected_adapters;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(client_id, base_fingerprint, mode, cut_layer, top_cut, activation_codec, adapters, max_positions,
       expected_adapters);
  }
};

struct GenerateOpenReply {
  uint64_t session = 0;
  int64_t kv_bytes = 0;           // reserved for the session's KV cache
  uint32_t round = 0;             // the server's round when the session's adapters were taken
  std::string server_fingerprint;
  template <class Archive>
  void serialize(Archive& ar) { ar(session, kv_bytes, round, server_fingerprint); }
};

// generate_prefill: position 0, the prompt's T positions (restarts the
// session's KV cache). generate_step: one position, the next one.
struct GenerateInput {
  std::string client_id;
  uint64_t session = 0;
  uint32_t position = 0;          // of the first position in `hidden`
  wire::WireTensor hidden;        // activations at cut_layer [1, T, dim]
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, session, position, hidden); }
};

// u_shaped: activations at top_cut of the request's positions [1, T, dim]
// (the site's top blocks cache them all). vanilla: the logits of the last
// position [1, 1, vocab] (the server holds the head).
struct GenerateOutput {
  uint64_t session = 0;
  uint32_t position = 0;          // as in the request
  wire::WireTensor tensor;
  template <class Archive>
  void serialize(Archive& ar) { ar(session, position, tensor); }
};

struct GenerateClose {
  std::string client_id;
  uint64_t session = 0;
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, session); }
};

struct GenerateCloseReply {
  uint64_t session = 0;
  uint32_t positions = 0;         // the session held this many when closed
  template <class Archive>
  void serialize(Archive& ar) { ar(session, positions); }
};

// Why the split server refused a request: a client reacts to the code, a
// person reads the message.
enum class ErrorCode : uint8_t {
  refused = 0,          // bad input or a state no retry fixes
  unknown_client = 1,   // the server has no session for this client (it restarted, or released
                        // the client at a round's end): say hello again and redo the step
  unknown_session = 2,  // no such generation session of this site (closed, expired, or the
                        // server restarted): open a new one
};

// key: the step refused; for generation requests {client_id, position, session}.
struct ErrorReply {
  StepKey key;
  std::string message;
  uint8_t code = 0;     // ErrorCode
  template <class Archive>
  void serialize(Archive& ar) { ar(key, message, code); }
};

}  // namespace cleave::split
