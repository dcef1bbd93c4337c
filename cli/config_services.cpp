#include "cli/config_services.h"

#include <algorithm>
#include <limits>

#include "cli/config_fields.h"
#include "cli/config_yaml.h"
#include "metrics/http_endpoint.h"

namespace cleave::cli {
namespace {

// Fields speaks int64_t; the option structs use narrower signed types. An
// out-of-range value is clamped, so validate() reports it as too large or
// too small instead of it wrapping around into a valid one.
template <typename T>
void narrow_field(Fields& f, const std::string& key, T& value) {
  int64_t wide = static_cast<int64_t>(value);
  f.field(key, wide);
  wide = std::clamp<int64_t>(wide, std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  value = static_cast<T>(wide);
}

// Unsigned fields: negative values are a ConfigError here (they cannot be
// represented afterwards).
template <typename T>
void unsigned_field(Fields& f, const std::string& key, T& value, const std::string& path) {
  int64_t wide = static_cast<int64_t>(value);
  f.field(key, wide);
  if (wide < 0) throw ConfigError(path + " must be >= 0, got " + std::to_string(wide));
  value = static_cast<T>(wide);
}

}  // namespace

const std::vector<std::pair<std::string, wire::WireDType>>& codec_names() {
  static const std::vector<std::pair<std::string, wire::WireDType>> names = {
      {"f32", wire::WireDType::F32},
      {"f16", wire::WireDType::F16},
      {"bf16", wire::WireDType::BF16},
      {"int8", wire::WireDType::I8_ROWSCALE},
      {"int4", wire::WireDType::I4_GROUP}};
  return names;
}

namespace {

void strategy_section(Fields& f, aggregator::StrategyOptions& s) {
  f.choice("name", s.name, aggregator::strategy_names());
  narrow_field(f, "local_steps", s.local_steps);
  f.section("fedprox", [&](Fields& p) { p.field("mu", s.fedprox.proximal_mu); });
  f.section("fedavgm", [&](Fields& p) {
    p.field("eta", s.fedavgm.eta);
    p.field("momentum", s.fedavgm.momentum);
  });
  f.section("fedopt", [&](Fields& p) {
    p.field("eta", s.fedopt.eta);
    p.field("beta1", s.fedopt.beta1);
    p.field("beta2", s.fedopt.beta2);
    p.field("tau", s.fedopt.tau);
  });
  f.section("robust", [&](Fields& p) {
    p.field("trim_fraction", s.robust.trim_fraction);
    p.field("clip_norm", s.robust.clip_norm);
  });
}

void visit_split_server_file(Fields& f, SplitServerFile& c) {
  f.field("model", c.model);
  f.section("base", [&](Fields& s) { base_fields(s, c.quant); });
  f.section("lora", [&](Fields& s) { lora_fields(s, c.lora); });
  f.section("runtime", [&](Fields& s) { runtime_fields(s, c.threads, c.compute); });
  f.section("split_server", [&](Fields& s) { split_server_section(s, c.split_server); });
  f.section("secure", [&](Fields& s) { secure_section(s, c.secure); });
  f.section("metrics", [&](Fields& s) { metrics_section(s, c.metrics); });
  f.section("logging", [&](Fields& s) { logging_section(s, c.logging); });
}

void visit_aggregator_file(Fields& f, AggregatorFile& c) {
  f.field("model", c.model);
  f.section("lora", [&](Fields& s) { lora_fields(s, c.lora); });
  f.section("aggregator", [&](Fields& s) { aggregator_section(s, c.aggregator); });
  f.section("secure", [&](Fields& s) { secure_section(s, c.secure); });
  f.section("metrics", [&](Fields& s) { metrics_section(s, c.metrics); });
  f.section("logging", [&](Fields& s) { logging_section(s, c.logging); });
}

void visit_client_file(Fields& f, ClientFile& c, int64_t& seed) {
  run_config_fields(f, c.run, seed);
  f.section("client", [&](Fields& s) { client_section(s, c.client); });
  f.section("metrics", [&](Fields& s) { metrics_section(s, c.metrics); });
  f.section("logging", [&](Fields& s) { logging_section(s, c.logging); });
}

void require(bool ok, const std::string& source, const std::string& what) {
  if (!ok) throw ConfigError(source + ": " + what);
}

}  // namespace

void secure_section(Fields& f, SecureConfig& c) {
  f.field("cert", c.cert);
  f.field("key", c.key);
  f.field("ca", c.ca);
  f.field("crl", c.crl);
  f.field("insecure", c.insecure);
  f.field("handshake_timeout_ms", c.handshake_timeout_ms);
}

void split_section(Fields& f, SplitConfig& c) {
  split::SplitClientOptions& o = c.options;
  f.field("server", c.server);
  f.field("server_name", c.server_name);
  f.field("client_id", o.client_id);
  f.choice("mode", o.mode, {{"vanilla", split::SplitMode::vanilla}, {"u_shaped", split::SplitMode::u_shaped}});
  narrow_field(f, "cut_layer", o.cut_layer);
  narrow_field(f, "top_cut", o.top_cut);
  f.choice("activation_codec", o.activation_codec, codec_names());
  f.choice("gradient_codec", o.gradient_codec, codec_names());
  f.field("stochastic_rounding", o.stochastic_rounding);
  f.field("activation_clip", o.protection.clip);
  f.field("activation_noise", o.protection.noise);
  f.field("timeout_ms", o.timeout_ms);
  narrow_field(f, "max_attempts", o.max_attempts);
  f.field("backoff_ms", o.backoff_ms);
  f.field("max_backoff_ms", o.max_backoff_ms);
  unsigned_field(f, "max_message_bytes", o.max_message_bytes, "split.max_message_bytes");
}

void split_server_section(Fields& f, SplitServerConfig& c) {
  split::SplitServerOptions& o = c.options;
  f.field("bind", c.bind);
  f.choice("variant", o.variant, {{"sfl_v1", split::ServerVariant::sfl_v1}, {"sfl_v2", split::ServerVariant::sfl_v2}});
  f.field("min_cut_layer", o.min_cut_layer);
  unsigned_field(f, "seed", o.seed, "split_server.seed");
  f.field("weight_decay", o.weight_decay);
  unsigned_field(f, "max_message_bytes", o.max_message_bytes, "split_server.max_message_bytes");
  f.field("max_tokens_per_step", o.max_tokens_per_step);
  f.field("checkpoint", o.checkpoint_path);
  f.field("recompute", o.recompute);
  f.field("stochastic_rounding", o.stochastic_rounding);
  f.field("generation_sessions", o.generation.max_sessions);
  f.field("generation_kv_bytes", o.generation.max_kv_bytes);
  f.field("generation_idle_ms", o.generation.idle_timeout_ms);
  // SFL-V1: merges the clients' copies as aggregator.strategy merges the sites' updates.
  f.section("strategy", [&](Fields& s) { strategy_section(s, o.strategy); });
  // Multi-hop: the split server this one hands its output to, and the one that forwards to it.
  f.section("next", [&](Fields& n) {
    n.field("address", o.next.address);
    n.field("name", o.next.name);
    narrow_field(n, "cut_layer", o.next.cut_layer);
    n.choice("activation_codec", o.next.activation_codec, codec_names());
    n.choice("gradient_codec", o.next.gradient_codec, codec_names());
    n.field("timeout_ms", o.next.timeout_ms);
    narrow_field(n, "max_attempts", o.next.max_attempts);
  });
  f.field("previous", c.previous);
}

void aggregator_section(Fields& f, AggregatorConfig& c) {
  aggregator::AggregatorOptions& o = c.options;
  f.field("bind", c.bind);
  f.field("rounds", o.rounds);
  f.field("clients_per_round", o.clients_per_round);
  f.field("fraction", o.fraction_per_round);
  f.choice("sampling", o.sampling, aggregator::client_sampling_names());
  f.field("min_clients", o.min_clients);
  f.field("min_registered", o.min_registered);
  f.field("max_registered", o.max_registered);
  f.field("round_deadline_ms", o.round_deadline_ms);
  f.choice("on_deadline", o.on_deadline,
           {{"extend", aggregator::OnDeadline::extend}, {"fail", aggregator::OnDeadline::fail}});
  f.field("max_extensions", o.max_extensions);
  unsigned_field(f, "seed", o.seed, "aggregator.seed");
  f.field("client_lr", o.client_lr);
  f.field("client_lr_min_ratio", o.client_lr_min_ratio);
  f.field("poll_interval_ms", o.poll_interval_ms);
  f.field("checkpoint_dir", o.checkpoint_dir);
  f.field("keep_checkpoints", o.keep_checkpoints);
  f.field("cut_layer", c.cut_layer);
  f.choice("split_mode", c.split_mode,
           {{"u_shaped", split::SplitMode::u_shaped}, {"vanilla", split::SplitMode::vanilla}});
  f.field("top_cut", c.top_cut);
  f.field("initial_adapters", c.initial_adapters);
  f.field("split_servers", o.split_servers);
  f.field("split_server_name", c.split_server_name);
  f.field("split_timeout_ms", o.split_timeout_ms);
  narrow_field(f, "split_max_attempts", o.split_max_attempts);
  f.field("split_backoff_ms", o.split_backoff_ms);
  unsigned_field(f, "max_message_bytes", o.max_message_bytes, "aggregator.max_message_bytes");
  f.section("strategy", [&](Fields& s) { strategy_section(s, o.strategy); });
  f.section("dp", [&](Fields& d) { dp_section(d, o.dp, "aggregator.dp"); });
  f.section("secure_aggregation", [&](Fields& s) { secure_aggregation_section(s, o.secure_aggregation); });
}

void secure_aggregation_section(Fields& f, aggregator::SecureAggregationOptions& o) {
  f.field("enabled", o.enabled);
  f.field("threshold", o.threshold);
  f.field("min_sites", o.min_sites);
  f.field("phase_timeout_ms", o.phase_timeout_ms);
  narrow_field(f, "scale_bits", o.scale_bits);
  f.field("clip_range", o.clip_range);
  f.field("weight_cap", o.weight_cap);
}

void dp_section(Fields& f, aggregator::DpOptions& dp, const std::string& path) {
  f.field("enabled", dp.enabled);
  f.field("clip_norm", dp.clip_norm);
  f.field("noise_multiplier", dp.noise_multiplier);
  f.field("target_epsilon", dp.target_epsilon);
  f.field("delta", dp.delta);
  unsigned_field(f, "noise_seed", dp.noise_seed, path + ".noise_seed");
  f.choice("noise", dp.distributed_noise, {{"central", false}, {"distributed", true}});
}

void client_section(Fields& f, ClientConfig& c) {
  f.field("id", c.id);
  f.field("aggregator", c.aggregator);
  f.field("aggregator_name", c.aggregator_name);
  f.field("request_timeout_ms", c.request_timeout_ms);
  f.field("max_attempts", c.max_attempts);
  f.field("backoff_ms", c.backoff_ms);
  f.field("max_backoff_ms", c.max_backoff_ms);
  f.section("secure_aggregation", [&](Fields& s) {
    s.field("required", c.secure_aggregation.required);
    s.field("min_threshold", c.secure_aggregation.min_threshold);
    s.field("min_sites", c.secure_aggregation.min_sites);
  });
}

void metrics_section(Fields& f, MetricsConfig& c) { f.field("listen", c.listen); }

void logging_section(Fields& f, LoggingConfig& c) { f.choice("level", c.level, log_level_names()); }

void MetricsConfig::validate(const std::string& source) const {
  if (!enabled()) return;
  try {
    metrics::parse_listen(listen, "metrics.listen");
  } catch (const std::invalid_argument& e) {
    throw ConfigError(source + ": " + e.what());
  }
}

void SecureConfig::validate(const std::string& source) const {
  require(handshake_timeout_ms > 0, source, "secure.handshake_timeout_ms must be > 0");
  if (insecure) return;
  const char* hint = " (made by `cleave ca issue`; or secure.insecure: true for plaintext on a trusted network)";
  require(!cert.empty(), source, std::string("secure.cert: required: this node's certificate") + hint);
  require(!key.empty(), source, std::string("secure.key: required: this node's private key") + hint);
  require(!ca.empty(), source, std::string("secure.ca: required: the federation CA certificate (ca.crt)") + hint);
}

void SplitConfig::validate(const std::string& source) const {
  if (!enabled()) return;
  require(options.cut_layer >= 1, source, "split.cut_layer must be >= 1 (the client runs blocks [0, cut_layer))");
  require(options.top_cut >= 0, source, "split.top_cut must be >= 0 (0: the last block), got " +
                                          std::to_string(options.top_cut));
  require(options.top_cut == 0 || options.top_cut > options.cut_layer, source,
          "split.top_cut must be above split.cut_layer (" + std::to_string(options.cut_layer) +
              "; 0: the last block), got " + std::to_string(options.top_cut));
  require(options.timeout_ms > 0, source, "split.timeout_ms must be > 0");
  require(options.max_attempts >= 1, source, "split.max_attempts must be >= 1");
  require(options.backoff_ms >= 0 && options.max_backoff_ms >= options.backoff_ms, source,
          "split.backoff_ms must be >= 0 and split.max_backoff_ms >= split.backoff_ms");
  require(options.max_message_bytes >= 1024, source, "split.max_message_bytes must be >= 1024");
  invalid_to_config_error(source, [&] { options.protection.validate("split."); });
}

void SplitServerConfig::validate(const std::string& source) const {
  require(!bind.empty(), source, "split_server.bind: required, e.g. tcp://0.0.0.0:5555");
  require(!options.next.enabled() || !options.next.address.empty(), source,
          "split_server.next.address: required with split_server.next.cut_layer: the next split server's endpoint");
  require(!options.next.enabled() || options.next.cut_layer > options.min_cut_layer, source,
          "split_server.next.cut_layer must be above split_server.min_cut_layer (" +
              std::to_string(options.min_cut_layer) + "), got " + std::to_string(options.next.cut_layer));
  invalid_to_config_error(source, [&] { options.validate(); });
}

void AggregatorConfig::validate(const std::string& source) const {
  require(!bind.empty(), source, "aggregator.bind: required, e.g. tcp://0.0.0.0:5556");
  require(cut_layer >= 0, source, "aggregator.cut_layer must be >= 0 (0: every block), got " + std::to_string(cut_layer));
  require(top_cut == 0 || top_cut > cut_layer, source,
          "aggregator.top_cut must be above aggregator.cut_layer (" + std::to_string(cut_layer) +
              "; 0: the last block), got " + std::to_string(top_cut));
  invalid_to_config_error(source, [&] { options.validate(); });
}

void ClientConfig::validate(const std::string& source) const {
  require(!aggregator.empty(), source, "client.aggregator: required: the aggregator's address, e.g. tcp://host:5556");
  require(request_timeout_ms > 0, source, "client.request_timeout_ms must be > 0");
  require(max_attempts >= 1, source, "client.max_attempts must be >= 1");
  require(backoff_ms >= 0 && max_backoff_ms >= backoff_ms, source,
          "client.backoff_ms must be >= 0 and client.max_backoff_ms >= client.backoff_ms");
  const secagg::SiteRequirements& sa = secure_aggregation;
  require(sa.min_threshold >= 0 && sa.min_threshold < 1, source,
          "client.secure_aggregation.min_threshold must be in [0, 1) (the site refuses rounds whose threshold is "
          "not above this share of the sampled sites), got " + std::to_string(sa.min_threshold));
  require(sa.min_sites >= 2, source, "client.secure_aggregation.min_sites must be >= 2");
}

void SplitServerFile::validate() const {
  require(!model.empty(), source, "model: required: the path of the base model GGUF");
  require(threads >= 0, source, "runtime.threads must be >= 0 (0: all cores)");
  invalid_to_config_error(source, [&] { compute.validate(); });
  invalid_to_config_error(source, [&] { lora.validate(); });
  split_server.validate(source);
  secure.validate(source);
  metrics.validate(source);
}

void AggregatorFile::validate() const {
  require(!model.empty() || !aggregator.initial_adapters.empty(), source,
          "model: required unless aggregator.initial_adapters is given: the global adapters' "
          "names and shapes come from the base model");
  invalid_to_config_error(source, [&] { lora.validate(); });
  aggregator.validate(source);
  secure.validate(source);
  metrics.validate(source);
  require(!aggregator.options.secure_aggregation.enabled || !secure.insecure, source,
          "aggregator.secure_aggregation needs TLS (secure.insecure: false): sites sign their round keys with "
          "their federation certificates and check their peers' against the CA");
}

void ClientFile::validate() const {
  run.validate();
  client.validate(run.source);
  metrics.validate(run.source);
  require(run.split.enabled(), run.source,
          "split.server: required: the split server's address (a site trains its client blocks through it)");
  require(!client.id.empty() || !run.secure.insecure, run.source,
          "client.id: required with secure.insecure: true (otherwise it is the certificate's name)");
  require(!client.secure_aggregation.required || !run.secure.insecure, run.source,
          "client.secure_aggregation.required needs TLS (secure.insecure: false): the site signs its round keys "
          "with its certificate");
}

SplitServerFile parse_split_server_config(const std::string& yaml_text, const std::string& source,
                                          const std::vector<Override>& overrides) {
  SplitServerFile config;
  config.source = source;
  read_yaml(yaml_text, source, overrides, [&](Fields& f) { visit_split_server_file(f, config); });
  config.validate();
  return config;
}

SplitServerFile load_split_server_config(const std::string& path, const std::vector<Override>& overrides) {
  return parse_split_server_config(read_config_file(path), path, overrides);
}

AggregatorFile parse_aggregator_config(const std::string& yaml_text, const std::string& source,
                                       const std::vector<Override>& overrides) {
  AggregatorFile config;
  config.source = source;
  read_yaml(yaml_text, source, overrides, [&](Fields& f) { visit_aggregator_file(f, config); });
  // The strategy merges the adapters as the federation's lora section says.
  config.aggregator.options.strategy.lora_aggregation = config.lora.aggregation;
  config.validate();
  return config;
}

AggregatorFile load_aggregator_config(const std::string& path, const std::vector<Override>& overrides) {
  return parse_aggregator_config(read_config_file(path), path, overrides);
}

ClientFile parse_client_config(const std::string& yaml_text, const std::string& source,
                               const std::vector<Override>& overrides) {
  return parse_run_based<ClientFile>(yaml_text, source, overrides, "runs/client", visit_client_file);
}

ClientFile load_client_config(const std::string& path, const std::vector<Override>& overrides) {
  return parse_client_config(read_config_file(path), path, overrides);
}

std::string to_yaml(const SplitServerFile& config) {
  SplitServerFile copy = config;
  return write_yaml([&](Fields& f) { visit_split_server_file(f, copy); });
}

std::string to_yaml(const AggregatorFile& config) {
  AggregatorFile copy = config;
  return write_yaml([&](Fields& f) { visit_aggregator_file(f, copy); });
}

std::string to_yaml(const ClientFile& config) { return write_run_based(config, visit_client_file); }

}  // namespace cleave::cli
