#include "cli/config.h"

#include "cli/config_fields.h"
#include "cli/config_services.h"
#include "cli/config_yaml.h"
#include "client/dataset.h"

namespace cleave::cli {
namespace {

// One function per section. A new section (split:, federation:, secure:) is
// a struct in config.h, one function here and one line in visit_config.

void base_section(Fields& f, BaseQuant& quant) {
  f.choice("quant", quant,
           {{"native", BaseQuant::native}, {"none", BaseQuant::none}, {"int8", BaseQuant::int8},
            {"q4", BaseQuant::q4}});
}

void lora_section(Fields& f, lora::LoraOptions& o) {
  f.field("rank", o.rank);
  f.field("alpha", o.alpha);
  f.field("dropout", o.dropout);
  f.field("targets", o.targets);
  f.field("layers", o.layers);
  f.choice("aggregation", o.aggregation,
           {{"separate", lora::LoraAggregation::separate}, {"ffa", lora::LoraAggregation::ffa},
            {"product", lora::LoraAggregation::product}});
}

void data_section(Fields& f, DataConfig& d) {
  f.field("train", d.train);
  f.field("eval", d.eval);
  f.field("eval_fraction", d.eval_fraction);
  f.field("seq_len", d.seq_len);
  f.field("batch_size", d.batch_size);
  f.choice("mode", d.mode,
           {{"packing", data::BatchMode::packing}, {"padding", data::BatchMode::padding}});
  f.field("eval_batches", d.eval_batches);
  f.choice("chat_template", d.chat_template, data::chat_template_settings());
}

void train_section(Fields& f, TrainOptions& t, int64_t& seed) {
  f.field("steps", t.steps);
  f.field("lr", t.lr);
  f.field("min_lr_ratio", t.min_lr_ratio);
  f.field("warmup_steps", t.warmup_steps);
  f.field("weight_decay", t.weight_decay);
  f.field("grad_clip", t.grad_clip);
  f.field("eval_every", t.eval_every);
  f.field("checkpoint_every", t.checkpoint_every);
  f.field("log_every", t.log_every);
  f.field("recompute", t.recompute);
  f.field("micro_batch", t.micro_batch);
  f.field("seed", seed);
}

void output_section(Fields& f, std::string& dir) { f.field("dir", dir); }

void runtime_section(Fields& f, int64_t& threads, ComputeOptions& compute) {
  f.field("threads", threads);
  f.field("device", compute.device);
  f.choice("precision", compute.precision,
           {{"float32", Precision::float32}, {"bf16", Precision::bf16}, {"fp16", Precision::fp16}});
  f.field("matmul", compute.matmul);
}

void visit_config(Fields& f, RunConfig& c, int64_t& seed) {
  f.field("model", c.model);
  f.section("base", [&](Fields& s) { base_section(s, c.quant); });
  f.section("lora", [&](Fields& s) { lora_section(s, c.lora); });
  f.section("data", [&](Fields& s) { data_section(s, c.data); });
  f.section("train", [&](Fields& s) { train_section(s, c.train, seed); });
  f.section("output", [&](Fields& s) { output_section(s, c.output_dir); });
  f.section("runtime", [&](Fields& s) { runtime_section(s, c.threads, c.compute); });
  f.section("split", [&](Fields& s) { split_section(s, c.split); });
  f.section("secure", [&](Fields& s) { secure_section(s, c.secure); });
}

void federation_section(Fields& f, simulate::FleetOptions& o) {
  f.field("clients", o.clients);
  f.choice("partition", o.partition,
           {{"iid", data::PartitionKind::iid}, {"dirichlet", data::PartitionKind::dirichlet},
            {"natural", data::PartitionKind::natural}, {"size_skew", data::PartitionKind::size_skew}});
  f.field("alpha", o.alpha);
  f.field("label_field", o.label_field);
  f.field("exponent", o.exponent);
  f.field("client_eval_fraction", o.client_eval_fraction);
  f.field("client_eval_batches", o.client_eval_batches);
  f.field("data_fraction", o.data_fraction);
  f.field("local_epochs", o.local_epochs);
  f.field("lr_across_rounds", o.lr_across_rounds);
  f.field("validation_fraction", o.validation_fraction);
  f.field("stop_patience", o.stop_patience);
  f.field("stop_min_improvement", o.stop_min_improvement);
  f.field("rounds", o.rounds);
  f.field("clients_per_round", o.clients_per_round);
  f.choice("sampling", o.sampling, aggregator::client_sampling_names());
  f.field("site_ranks", o.site_ranks);
  f.choice("strategy", o.strategy.name, aggregator::strategy_names());
  f.field("proximal_mu", o.strategy.fedprox.proximal_mu);
  f.field("server_lr", o.strategy.fedopt.eta);
  f.field("server_tau", o.strategy.fedopt.tau);
  f.section("fedavgm", [&](Fields& p) {
    p.field("eta", o.strategy.fedavgm.eta);
    p.field("momentum", o.strategy.fedavgm.momentum);
  });
  f.choice("mode", o.mode, {{"split", simulate::FleetMode::split}, {"nosplit", simulate::FleetMode::nosplit}});
  f.choice("split_mode", o.split_mode,
           {{"u_shaped", split::SplitMode::u_shaped}, {"vanilla", split::SplitMode::vanilla}});
  f.field("cut_layer", o.cut_layer);
  f.field("top_cut", o.top_cut);
  f.field("split_chain", o.split_chain);
  f.field("service_host", o.service_host);
  f.section("dp", [&](Fields& d) { dp_section(d, o.dp, "federation.dp"); });
  f.section("secure_aggregation", [&](Fields& s) { secure_aggregation_section(s, o.secure_aggregation); });
  f.field("activation_clip", o.protection.clip);
  f.field("activation_noise", o.protection.noise);
  f.choice("activation_codec", o.activation_codec, codec_names());
  f.choice("gradient_codec", o.gradient_codec, codec_names());
  f.field("stochastic_rounding", o.stochastic_rounding);
  f.choice("variant", o.variant,
           {{"sfl_v1", split::ServerVariant::sfl_v1}, {"sfl_v2", split::ServerVariant::sfl_v2}});
  f.choice("transport", o.transport,
           {{"inproc", simulate::FleetTransport::inproc}, {"tcp", simulate::FleetTransport::tcp}});
  f.field("workers", o.workers);
  f.field("eval_every", o.eval_every);
  f.field("baselines", o.baselines);
  f.field("run_fleet", o.run_fleet);
  f.field("progress", o.progress);
}

void visit_simulate_config(Fields& f, SimulateConfig& c, int64_t& seed) {
  visit_config(f, c.run, seed);
  f.section("federation", [&](Fields& s) { federation_section(s, c.federation); });
}

}  // namespace

// The sections the service configurations share (cli/config_services.cpp).
void base_fields(Fields& f, BaseQuant& quant) { base_section(f, quant); }
void lora_fields(Fields& f, lora::LoraOptions& lora) { lora_section(f, lora); }
void runtime_fields(Fields& f, int64_t& threads, ComputeOptions& compute) {
  runtime_section(f, threads, compute);
}
void run_config_fields(Fields& f, RunConfig& config, int64_t& seed) { visit_config(f, config, seed); }

void RunConfig::validate() const {
  auto require = [&](bool ok, const std::string& what) {
    if (!ok) throw ConfigError(source + ": " + what);
  };
  require(!model.empty(), "model: required: the path of the base model GGUF");
  require(!data.train.empty(), "data.train: required: the training data (JSONL or text)");
  require(data.eval_fraction >= 0 && data.eval_fraction < 1,
          "data.eval_fraction must be in [0, 1), got " + std::to_string(data.eval_fraction));
  require(data.eval.empty() || data.eval_fraction == 0,
          "data.eval and data.eval_fraction both set: give a held-out file or a fraction, not both");
  require(data.seq_len > 0, "data.seq_len must be > 0, got " + std::to_string(data.seq_len));
  require(data.batch_size > 0, "data.batch_size must be > 0, got " + std::to_string(data.batch_size));
  require(data.eval_batches >= 0, "data.eval_batches must be >= 0 (0: all)");
  require(!output_dir.empty(), "output.dir: required: the run directory");
  require(threads >= 0, "runtime.threads must be >= 0 (0: all cores)");
  invalid_to_config_error(source, [&] { compute.validate(); });
  invalid_to_config_error(source, [&] { lora.validate(); });
  invalid_to_config_error(source, [&] { train.validate(); });
  split.validate(source);
  if (split.enabled()) secure.validate(source);
  require(!split.enabled() || train.micro_batch == 0,
          "train.micro_batch: with a split: section every batch is one exchange with the split server, "
          "which steps its adapters per batch; set it to 0 or train without split:");
}

Override parse_override(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("--set " + text + ": expected key=value with a dotted key, e.g. train.lr=1e-3");
  }
  return {text.substr(0, eq), text.substr(eq + 1)};
}

RunConfig parse_config(const std::string& yaml_text, const std::string& source,
                       const std::vector<Override>& overrides) {
  return parse_run_based<RunConfig>(yaml_text, source, overrides, RunConfig().output_dir, visit_config);
}

RunConfig load_config(const std::string& path, const std::vector<Override>& overrides) {
  return parse_config(read_config_file(path), path, overrides);
}

void SimulateConfig::validate() const {
  run.validate();
  if (run.split.enabled()) {
    throw ConfigError(run.source + ": split: is for cleave train and cleave client; a simulated fleet "
                      "splits by federation.mode and federation.cut_layer");
  }
  if (run.train.recompute && federation.workers > 1 && run.lora.dropout > 0) {
    throw ConfigError(run.source + ": train.recompute with federation.workers > 1 and lora.dropout > 0: a "
                      "recomputed block replays the dropout masks from the process-wide random generator, "
                      "which sites trained at once would share; set federation.workers: 1 or lora.dropout: 0");
  }
  if (run.train.micro_batch != 0 && federation.mode == simulate::FleetMode::split) {
    throw ConfigError(run.source + ": train.micro_batch: a split fleet's sites step through the split server "
                      "once per batch; set it to 0, or use federation.mode: nosplit");
  }
  const std::pair<const char*, const std::string*> identity_files[] = {
      {"cert", &run.secure.cert}, {"key", &run.secure.key}, {"ca", &run.secure.ca}, {"crl", &run.secure.crl}};
  for (const auto& [key, value] : identity_files) {
    if (value->empty()) continue;
    throw ConfigError(run.source + ": secure." + key + ": a simulated fleet issues its own certificates from a "
                      "throw-away CA in <output.dir>/pki; leave secure.cert, key, ca and crl out "
                      "(secure.insecure: true for plaintext)");
  }
  if (run.secure.handshake_timeout_ms <= 0) {
    throw ConfigError(run.source + ": secure.handshake_timeout_ms must be > 0");
  }
  invalid_to_config_error(run.source, [&] { federation.validate(); });
}

SimulateConfig parse_simulate_config(const std::string& yaml_text, const std::string& source,
                                     const std::vector<Override>& overrides) {
  return parse_run_based<SimulateConfig>(yaml_text, source, overrides, "runs/simulate",
                                         visit_simulate_config);
}

SimulateConfig load_simulate_config(const std::string& path, const std::vector<Override>& overrides) {
  return parse_simulate_config(read_config_file(path), path, overrides);
}

std::string to_yaml(const SimulateConfig& config) { return write_run_based(config, visit_simulate_config); }

std::string to_yaml(const RunConfig& config) { return write_run_based(config, visit_config); }

}  // namespace cleave::cli
