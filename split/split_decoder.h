// Split inference at the site: a Decoder (model/generate.h) that runs the
// embeddings and blocks [0, cut_layer) here, the split server's blocks in a
// generation session there, and in u_shaped blocks [top_cut, L) and the head
// here again, each side with its own KV caches. Only activations cross the
// wire (in vanilla the server returns the last position's logits): the
// prompt in one prefill exchange, then one position per step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/generate.h"
#include "split/split_client.h"

namespace cleave {
class KvCache;
class LinearAdapters;
}

namespace cleave::split {

struct SplitDecoderOptions {
  // client_id, mode, cut_layer, top_cut (resolved: not 0 in u_shaped),
  // activation_codec (both directions), timeouts and the stop flag.
  SplitClientOptions split;
  GenerationAdapters server_adapters = GenerationAdapters::global;
  // Base tensors the server must adapt (lora::adapted_projections of the
  // site's lora options over the server's blocks); empty: no check.
  std::vector<std::string> expected_server_adapters;
  int64_t capacity = 0;   // positions per session; 0: the model's context length
};

class SplitDecoder : public Decoder {
 public:
  // `site_adapters` (may be null) adapt the site's blocks; `channel` reaches
  // the split server. The session opens at the first feed().
  SplitDecoder(std::shared_ptr<const LlamaModel> model, const LinearAdapters* site_adapters,
               net::ClientChannel& channel, SplitDecoderOptions options);
  // Closes the session (one attempt; an unanswered close expires on the server).
  ~SplitDecoder() override;

  at::Tensor feed(const std::vector<TokenId>& tokens) override;
  void restart() override;
  int64_t capacity() const override { return capacity_; }

  // Opens the generation session (idempotent); throws SplitError with the
  // server's reason when it refuses (limits, missing adapters, another base).
  void open();
  // Frees the session on the server now.
  void close();

  wire::ByteCounter& bytes() { return bytes_; }
  uint64_t requests() const { return requests_; }   // exchanges with the server, open and close included
  uint64_t session() const { return session_; }     // 0 while none is open
  uint32_t server_round() const { return server_round_; }
  int64_t server_kv_bytes() const { return server_kv_bytes_; }

 private:
  // One request of this session; `position` tells its reply from a late one.
  net::Bytes exchange(const net::Bytes& request, MessageType expected, uint32_t position);

  std::shared_ptr<const LlamaModel> model_;
  const LinearAdapters* site_adapters_;
  net::ClientChannel& channel_;
  SplitDecoderOptions options_;
  int64_t capacity_ = 0;
  std::unique_ptr<KvCache> bottom_, top_;   // [0, cut_layer); u_shaped: [top_cut, L)
  uint64_t session_ = 0;                    // 0: none open
  uint32_t server_round_ = 0;
  int64_t server_kv_bytes_ = 0;
  wire::ByteCounter bytes_;
  uint64_t requests_ = 0;
};

}  // namespace cleave::split
