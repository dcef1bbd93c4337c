// The client side of split learning: runs the embeddings and blocks
// [0, cut_layer) (and in U-shaped mode blocks [top_cut, L), the final norm, the
// output projection and the loss) with its own adapters, and exchanges smashed
// activations and gradients with the split server.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "client/train_step.h"
#include "split/smashed_protection.h"
#include "split/split_messages.h"
#include "transport/channel.h"
#include "wire/frame.h"

namespace cleave {
class LlamaModel;
namespace lora { class AdapterSet; }
}

namespace cleave::split {

struct SplitClientOptions {
  std::string client_id = "client-0";
  // u_shaped: the labels (the site's text) stay at the site; vanilla sends
  // them to the split server with every step.
  SplitMode mode = SplitMode::u_shaped;
  int32_t cut_layer = 1;
  int32_t top_cut = 0;                  // u_shaped: 0 means L - 1
  wire::WireDType activation_codec = wire::WireDType::F32;
  wire::WireDType gradient_codec = wire::WireDType::F32;
  // int4 codes of what this site sends rounded stochastically (unbiased)
  // instead of to nearest (split.stochastic_rounding).
  bool stochastic_rounding = false;
  bool recompute = false;               // train.recompute: the client's blocks are
                                        // recomputed in backward, not kept
  SmashedProtection protection;         // split.activation_clip / activation_noise
  int64_t timeout_ms = 30000;           // per attempt
  int max_attempts = 5;                 // then the step fails
  int64_t backoff_ms = 200;             // doubled after each failed attempt (with jitter)
  int64_t max_backoff_ms = 5000;
  size_t max_message_bytes = 256u << 20;
  const std::atomic<bool>* stop = nullptr;   // a signal: the step ends with net::RequestStopped

  void validate(int64_t n_layers) const;   // throws std::invalid_argument naming the field
};

// A failure reported by the split server or a server that stayed silent.
class SplitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The split server holds no session for this client (it restarted, or it
// released the client): forward_backward says hello again and redoes the step.
class SplitSessionLost : public SplitError {
 public:
  using SplitError::SplitError;
};

class SplitTrainStep : public TrainStep {
 public:
  // `adapters` must hold only the client's blocks (see lora::AdapterSet::subset).
  SplitTrainStep(std::shared_ptr<const LlamaModel> model, lora::AdapterSet& adapters,
                 net::ClientChannel& channel, SplitClientOptions options);

  // Says hello (idempotent); called by the first step if not before, and
  // again when the server has lost this client's session.
  void connect();
  StepResult forward_backward(const data::Batch& batch, const StepContext& context) override;
  std::vector<at::Tensor> parameters() const override;

  // Asks the server to close `round` (SFL-V1 averaging); for single-client runs and tests.
  uint32_t end_round(uint32_t round, const RoundSites& participants = {});
  wire::ByteCounter& bytes() { return bytes_; }
  // Bytes of labels (target ids and weights: the site's text) sent to the
  // split server; vanilla only, 0 in u_shaped.
  uint64_t label_bytes() const { return label_bytes_; }
  uint32_t server_round() const { return server_round_; }
  const SplitClientOptions& options() const { return options_; }

 private:
  net::Bytes exchange(const net::Bytes& request, MessageType expected, const StepKey& key);
  StepResult step_once(const data::Batch& batch, const StepContext& context);

  std::shared_ptr<const LlamaModel> model_;
  lora::AdapterSet& adapters_;
  net::ClientChannel& channel_;
  SplitClientOptions options_;
  SmashedProtector protector_;
  bool connected_ = false;
  uint32_t server_round_ = 0;
  wire::ByteCounter bytes_;
  uint64_t label_bytes_ = 0;
};

}  // namespace cleave::split
