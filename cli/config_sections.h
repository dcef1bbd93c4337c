// The configuration sections of the deployable services: `split:` (a client
// of a split server), `secure:` (TLS identity), `split_server:`,
// `aggregator:` and `client:`. Plain structs with defaults inline; YAML is
// read into them only by the section functions below (config_services.cpp),
// which the readers in config*.cpp drive.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "aggregator/aggregator_options.h"
#include "secagg/site_session.h"
#include "split/split_client.h"
#include "split/split_server.h"
#include "util/log.h"

namespace cleave::cli {

class Fields;

// `secure:` — the node's TLS identity, issued by `cleave ca issue`. Every
// channel is mutually authenticated TLS 1.3 unless `insecure: true`.
struct SecureConfig {
  std::string cert;                   // this node's certificate (PEM)
  std::string key;                    // its private key (PEM, mode 0600)
  std::string ca;                     // the federation CA certificate
  std::string crl;                    // the CA's revocation list; "" : no revocation check
  bool insecure = false;              // plaintext, for experiments on one machine only
  int64_t handshake_timeout_ms = 10000;

  // Throws ConfigError (naming `source`) when TLS is on and a file is not given.
  void validate(const std::string& source) const;
};

// `split:` — train against a running split server instead of locally
// (`cleave train`, `cleave client`). Absent (no server): local training.
struct SplitConfig {
  std::string server;                 // e.g. tcp://split.example.org:5555
  std::string server_name;            // the split server's certificate name; "" : any split-server
  // client_id "" : the certificate's name (or "client-0" with insecure: true).
  split::SplitClientOptions options = default_options();

  bool enabled() const { return !server.empty(); }
  void validate(const std::string& source) const;

 private:
  static split::SplitClientOptions default_options() {
    split::SplitClientOptions o;
    o.client_id.clear();
    return o;
  }
};

// `split_server:` of `cleave split-server`. The server's adapters take the
// file's top-level `lora:` section.
struct SplitServerConfig {
  std::string bind = "tcp://127.0.0.1:5555";  // port 0: any free port (logged)
  split::SplitServerOptions options;          // variant, min_cut_layer, checkpoint_path, next, ...
  // A later hop of a chain: the certificate name of the split server that
  // forwards to this one (split_server.previous); sites do not talk to it.
  std::string previous;

  void validate(const std::string& source) const;
};

// `aggregator:` of `cleave aggregator`.
struct AggregatorConfig {
  std::string bind = "tcp://127.0.0.1:5556";  // port 0: any free port (logged)
  aggregator::AggregatorOptions options;      // rounds, sampling, deadline, strategy, split_servers
  // The blocks the sites run and the global adapters cover; sites whose
  // split.mode, split.cut_layer or split.top_cut differ are refused at
  // registration. cut_layer 0: every block (federation without split).
  // u_shaped: [0, cut_layer) and [top_cut, L) (top_cut 0: L - 1); vanilla:
  // [0, cut_layer), and the sites send their labels to the split server.
  int64_t cut_layer = 0;
  split::SplitMode split_mode = split::SplitMode::u_shaped;
  int64_t top_cut = 0;
  // A GGUF LoRA to start from; "" : fresh adapters from `model:` and `lora:`.
  std::string initial_adapters;
  // The split servers' certificate names; "" : any split-server certificate.
  std::string split_server_name;

  void validate(const std::string& source) const;
};

// `client:` of `cleave client` (a hospital site). The site's data, model,
// LoRA and local training come from the same sections as `cleave train`
// (train.steps: the local steps per round); `split:` names the split server.
struct ClientConfig {
  std::string id;                     // "" : the certificate's name
  std::string aggregator;             // e.g. tcp://aggregator.example.org:5556
  std::string aggregator_name;        // the aggregator's certificate name; "" : any aggregator
  int64_t request_timeout_ms = 10000; // per attempt
  int64_t max_attempts = 8;           // unanswered attempts in a row before giving up
  int64_t backoff_ms = 200;           // doubled after each unanswered attempt
  int64_t max_backoff_ms = 5000;
  // client.secure_aggregation: what the site requires of a secure round.
  secagg::SiteRequirements secure_aggregation;

  void validate(const std::string& source) const;
};

// `metrics:` of the three services: Prometheus' /metrics with /healthz and
// /readyz over HTTP (metrics/http_endpoint.h). Off unless listen is given.
struct MetricsConfig {
  std::string listen;                 // "" : off; HOST:PORT, :PORT or PORT (127.0.0.1); port 0: any free port

  bool enabled() const { return !listen.empty(); }
  void validate(const std::string& source) const;
};

// `logging:` of the three services: the lowest level of line they print
// (debug, info, warning, error); --log-level overrides it.
struct LoggingConfig {
  LogLevel level = LogLevel::info;
};

// The names of split.activation_codec, gradient_codec and federation's:
// f32, f16, bf16, int8, int4.
const std::vector<std::pair<std::string, wire::WireDType>>& codec_names();

// One function per section (config_services.cpp).
void secure_section(Fields& f, SecureConfig& c);
void split_section(Fields& f, SplitConfig& c);
void split_server_section(Fields& f, SplitServerConfig& c);
void aggregator_section(Fields& f, AggregatorConfig& c);
void client_section(Fields& f, ClientConfig& c);
void metrics_section(Fields& f, MetricsConfig& c);
void logging_section(Fields& f, LoggingConfig& c);
// aggregator.dp and federation.dp; `path` names the section in errors ("aggregator.dp").
void dp_section(Fields& f, aggregator::DpOptions& dp, const std::string& path);
void secure_aggregation_section(Fields& f, aggregator::SecureAggregationOptions& o);

}  // namespace cleave::cli
