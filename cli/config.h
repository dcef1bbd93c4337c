// The run configuration of `cleave train` (and the demo): plain option
// structs, filled from a YAML file plus `--set key=value` overrides. This is
// the one place YAML is read; see configs/default.yaml for every key.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/config_sections.h"
#include "client/batching.h"
#include "client/trainer.h"
#include "lora/lora_options.h"
#include "model/compute.h"
#include "model/frozen_weight.h"
#include "simulate/simulation_config.h"

namespace cleave::cli {

// A configuration the user must fix: unknown key, wrong type, invalid value.
// The message names the file (or the --set) and the key's dotted path.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DataConfig {
  std::string train;             // JSONL or plain text
  std::string eval;              // held-out file; empty: eval_fraction of train, or none
  double eval_fraction = 0.0;    // hold out this share of the train records (split by seed)
  int64_t seq_len = 256;
  int64_t batch_size = 8;
  data::BatchMode mode = data::BatchMode::packing;
  int64_t eval_batches = 0;      // held-out batches scored per evaluation; 0: all
  // How prompt/completion records are written (data::choose_chat_format):
  // none (as they are) | auto (the model's chat template) | llama3 | chatml | llama2.
  std::string chat_template = "none";
};

struct RunConfig {
  std::string source = "<defaults>";  // the file it came from, for messages
  std::string model;                  // base model GGUF
  BaseQuant quant = BaseQuant::native;  // base.quant
  lora::LoraOptions lora;
  DataConfig data;
  TrainOptions train;
  uint64_t seed = 0;                  // train.seed: adapters, shuffling, split, dropout
  std::string output_dir = "runs/train";  // output.dir
  int64_t threads = 0;                // runtime.threads; 0: all cores
  ComputeOptions compute{"cpu", Precision::float32, "auto"};  // runtime.device, .precision, .matmul
  SplitConfig split;                  // split: train against a split server (cleave train, client)
  SecureConfig secure;                // secure: TLS identity for the split (and aggregator) channels

  // Cross-field checks and each struct's own validate(); throws ConfigError.
  void validate() const;
};

// One `--set key=value`: a dotted path and a YAML scalar or flow value
// ("8", "[q, v]", "{rank: 4}").
struct Override {
  std::string path;
  std::string value;
};
// Splits "train.lr=1e-3"; throws ConfigError when there is no '=' or no key.
Override parse_override(const std::string& text);

// Reads `path` (every key optional; defaults above), applies the overrides in
// order, checks every key and type, and validates.
RunConfig load_config(const std::string& path, const std::vector<Override>& overrides = {});
// The same from YAML text; `source` names it in messages.
RunConfig parse_config(const std::string& yaml_text, const std::string& source,
                       const std::vector<Override>& overrides = {});

// The configuration with every key spelled out, as YAML that load_config
// reads back to the same values (written to <run dir>/config.resolved.yaml).
std::string to_yaml(const RunConfig& config);

// `cleave simulate`: the sections of `cleave train` (train.steps being the
// local steps per round, data.train a file or a glob such as
// "data/medquad/*.jsonl") plus the `federation:` section.
struct SimulateConfig {
  RunConfig run;
  simulate::FleetOptions federation;

  void validate() const;   // throws ConfigError
};

SimulateConfig load_simulate_config(const std::string& path, const std::vector<Override>& overrides = {});
SimulateConfig parse_simulate_config(const std::string& yaml_text, const std::string& source,
                                     const std::vector<Override>& overrides = {});
std::string to_yaml(const SimulateConfig& config);

}  // namespace cleave::cli
