// The configuration files of the deployable services: `cleave split-server`,
// `cleave aggregator` and `cleave client`. Like config.h: every key optional
// unless said otherwise, unknown keys are errors naming their path, --set
// overrides apply, and to_yaml writes a file that reads back the same.
#pragma once

#include <string>
#include <vector>

#include "cli/config.h"
#include "cli/config_sections.h"

namespace cleave::cli {

// cleave split-server: model, base, lora (the server's adapters), runtime,
// split_server, secure, metrics, logging.
struct SplitServerFile {
  std::string source = "<defaults>";
  std::string model;                     // required: the base model GGUF
  BaseQuant quant = BaseQuant::native;
  lora::LoraOptions lora;
  int64_t threads = 0;
  ComputeOptions compute{"cpu", Precision::float32, "auto"};  // runtime.device, .precision, .matmul
  SplitServerConfig split_server;
  SecureConfig secure;
  MetricsConfig metrics;
  LoggingConfig logging;

  void validate() const;                 // throws ConfigError
};

// cleave aggregator: model (for the adapters' shapes, unless
// aggregator.initial_adapters is given), lora, aggregator, secure, metrics,
// logging.
struct AggregatorFile {
  std::string source = "<defaults>";
  std::string model;
  lora::LoraOptions lora;
  AggregatorConfig aggregator;
  SecureConfig secure;
  MetricsConfig metrics;
  LoggingConfig logging;

  void validate() const;
};

// cleave client: the sections of `cleave train` (model, base, lora, data,
// train, runtime, output, split, secure) plus `client:`, `metrics:` and
// `logging:`.
struct ClientFile {
  RunConfig run;
  ClientConfig client;
  MetricsConfig metrics;
  LoggingConfig logging;

  void validate() const;
};

SplitServerFile load_split_server_config(const std::string& path, const std::vector<Override>& overrides = {});
SplitServerFile parse_split_server_config(const std::string& yaml_text, const std::string& source,
                                          const std::vector<Override>& overrides = {});
AggregatorFile load_aggregator_config(const std::string& path, const std::vector<Override>& overrides = {});
AggregatorFile parse_aggregator_config(const std::string& yaml_text, const std::string& source,
                                       const std::vector<Override>& overrides = {});
ClientFile load_client_config(const std::string& path, const std::vector<Override>& overrides = {});
ClientFile parse_client_config(const std::string& yaml_text, const std::string& source,
                               const std::vector<Override>& overrides = {});

std::string to_yaml(const SplitServerFile& config);
std::string to_yaml(const AggregatorFile& config);
std::string to_yaml(const ClientFile& config);

// The sections config.cpp owns, for the files above (defined in config.cpp).
void base_fields(Fields& f, BaseQuant& quant);
void lora_fields(Fields& f, lora::LoraOptions& lora);
void runtime_fields(Fields& f, int64_t& threads, ComputeOptions& compute);
void run_config_fields(Fields& f, RunConfig& config, int64_t& seed);

}  // namespace cleave::cli
