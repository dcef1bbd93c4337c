// A site's side of the conversation with the aggregator: each request is sent
// until a reply of an expected type arrives (net::request_with_retry: a
// backoff with jitter and a reconnect after every silent attempt, ended by
// the stop flag). FederatedClient talks through one; the
// simulator registers sites through one without instantiating their training.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "aggregator/federation_messages.h"
#include "lora/lora_options.h"
#include "split/site_blocks.h"
#include "transport/channel.h"
#include "util/log.h"

namespace cleave::aggregator {

// The aggregator refused this site or stayed silent; the message says which.
class FederationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LinkOptions {
  int64_t request_timeout_ms = 10000;   // per attempt
  int max_attempts = 8;                 // unanswered attempts in a row before giving up
  int64_t backoff_ms = 200;             // doubled after each unanswered attempt
  int64_t max_backoff_ms = 5000;
  size_t max_message_bytes = 256u << 20;
  const std::atomic<bool>* stop = nullptr;   // a signal: requests end with net::RequestStopped
};

class AggregatorLink {
 public:
  // `channel` must outlive the link; one link (or channel) per thread. Each
  // retry is a warning on `log`, the registration info.
  AggregatorLink(net::ClientChannel& channel, std::string client_id, LinkOptions options, Log log);

  // Registers the site, which runs `blocks` with adapters of lora.rank and
  // lora.alpha `lora`'s; throws FederationError when the aggregator refuses it
  // (another base model, other blocks, a rank it cannot serve, a full federation).
  RegisterReply register_site(const std::string& base_fingerprint, int64_t num_samples, split::SiteBlocks blocks,
                              const lora::LoraOptions& lora);

  // Sends `request` until a reply of one of `expected` types (or an error
  // reply) arrives; throws FederationError after max_attempts silent tries.
  net::Bytes exchange(const net::Bytes& request, std::initializer_list<FederationMessage> expected);

  const std::string& client_id() const { return client_id_; }
  const LinkOptions& options() const { return options_; }
  std::string describe() const { return channel_.describe(); }

 private:
  net::ClientChannel& channel_;
  std::string client_id_;
  LinkOptions options_;
  Log log_;
};

}  // namespace cleave::aggregator
