// Multi-hop split learning: a split server that runs blocks [c1, c2) and
// hands the rest to the next split server, which takes over at c2
// (split_server.next). The site talks to the first hop only; each hop asks
// the next one through this, as a site asks its split server, with the
// site's id, step keys and session ids relayed, so the next hop keeps its
// per-site state (SFL-V1 copies, generation sessions) under the site's id.
//
//   site [0, c1) -> hop 1 [c1, c2) -> hop 2 [c2, top_cut) or [c2, L) + loss
//   u_shaped: hop 2's activations at top_cut go back through hop 1 to the
//   site; the site's gradient at top_cut goes to hop 2 the same way, and the
//   gradient at c2 comes back to hop 1 for its own blocks.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "split/split_client.h"
#include "split/split_messages.h"
#include "transport/channel.h"
#include "wire/frame.h"

namespace cleave::split {

// split_server.next: where the next hop takes over and how this server talks
// to it (its codecs, and timeouts and retries as a site's split options).
struct NextHopOptions {
  std::string address;                  // the next split server's endpoint; "" = this is the last hop
  std::string name;                     // its certificate name (checked when set)
  int32_t cut_layer = 0;                // the next hop runs from this block on
  wire::WireDType activation_codec = wire::WireDType::F32;
  wire::WireDType gradient_codec = wire::WireDType::F32;
  int64_t timeout_ms = 30000;           // per attempt
  int max_attempts = 5;

  bool enabled() const { return !address.empty() || cut_layer > 0; }
  // Throws std::invalid_argument naming split_server.next.* (cut_layer within
  // (min_cut_layer, n_layers)).
  void validate(int64_t min_cut_layer, int64_t n_layers) const;
};

class NextHop {
 public:
  NextHop(std::unique_ptr<net::ClientChannel> channel, NextHopOptions options, size_t max_message_bytes,
          const std::atomic<bool>* stop = nullptr);
  ~NextHop();

  int32_t cut_layer() const { return options_.cut_layer; }
  // The site's Hello, relayed with this hop's cut and codecs.
  void hello(const Hello& site);
  // The site's step, with this hop's output at cut_layer() [B, T, dim] in
  // place of the site's smashed activations. Returns the next hop's reply,
  // its tensor decoded: the gradient at cut_layer() with the loss
  // (vanilla) or the activations at top_cut (u_shaped).
  struct Forwarded {
    double loss = 0;
    int64_t n_scored = 0;
    at::Tensor tensor;
  };
  Forwarded forward(const ForwardRequest& site_request, const at::Tensor& hidden, const Hello& site);
  // u_shaped: the site's gradient at top_cut; returns the gradient at cut_layer().
  at::Tensor backward(const StepKey& key, const at::Tensor& grad_at_top, const std::vector<int64_t>& hidden_shape);
  EndRoundReply end_round(const EndRound& request);
  SyncRoundReply sync_round(const SyncRound& request);

  // Generation: the next hop's session for the site's `request`, over blocks
  // from cut_layer(), with the expected adapters of those blocks only.
  uint64_t open_generation(const GenerateOpen& request);
  // The next hop's output for `hidden` at cut_layer() [1, T, dim], decoded:
  // activations at top_cut [1, T, dim] (u_shaped) or logits [1, 1, vocab].
  at::Tensor feed(const std::string& client_id, uint64_t session, uint32_t position, const at::Tensor& hidden,
                  bool prefill);
  void close_generation(const std::string& client_id, uint64_t session);

  wire::ByteCounter& bytes() { return bytes_; }
  std::string describe() const;

 private:
  net::Bytes exchange(const net::Bytes& request, MessageType expected, const StepKey& key);

  std::unique_ptr<net::ClientChannel> channel_;
  NextHopOptions options_;
  SplitClientOptions exchange_options_;   // timeouts, retries and limits of each request
  wire::ByteCounter bytes_;
};

}  // namespace cleave::split
