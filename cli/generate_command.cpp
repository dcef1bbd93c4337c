// cleave generate --model FILE --prompt TEXT [--adapter FILE] [-n N] ...
// cleave generate --config FILE.yaml --prompt TEXT [--adapter FILE] ...: with
// a split: section, split inference against the split server.
#include <algorithm>
#include <iostream>

#include "cli/commands.h"
#include "cli/config.h"
#include "cli/model_flags.h"
#include "cli/secure_channels.h"
#include "cli/service_runtime.h"
#include "cli/split_session.h"
#include "lora/adapter_gguf.h"
#include "metrics/cpu_clock.h"
#include "metrics/powercap_meter.h"
#include "model/generate.h"
#include "split/split_decoder.h"

namespace cleave::cli {
namespace {

SamplingOptions read_sampling(const ParsedArgs& args) {
  SamplingOptions options;
  options.max_new_tokens = args.get_int("--n-predict");
  options.temperature = args.get_double("--temperature");
  options.top_k = args.get_int("--top-k");
  options.top_p = args.get_double("--top-p");
  const int64_t seed = args.get_int("--seed");
  if (seed < 0) throw UsageError("--seed must be >= 0");
  options.seed = static_cast<uint64_t>(seed);
  try {
    options.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  return options;
}

split::GenerationAdapters server_adapters_from_flag(const std::string& value) {
  if (value == "global") return split::GenerationAdapters::global;
  if (value == "own") return split::GenerationAdapters::own;
  throw UsageError("--server-adapters must be global or own, not '" + value + "'");
}

// What generating costs this process (every thread: the site's blocks and
// head, and in split runs its waits), from construction to describe().
class GenerationCost {
 public:
  GenerationCost() : start_(metrics::CpuSample::now()) {
    if (metrics::machine_powercap().available()) energy_ = metrics::machine_powercap().read();
  }
  // "cost: CPU 0.52 s (8123 us per generated token over 64 tokens), wall 0.60 s, energy n/a (...)"
  std::string describe(size_t tokens) const {
    const metrics::CpuSample now = metrics::CpuSample::now();
    const double cpu = now.process_cpu - start_.process_cpu;
    const double per_token = tokens ? cpu * 1e6 / static_cast<double>(tokens) : 0.0;
    std::string energy = "energy " + metrics::machine_powercap().status();
    if (energy_) {
      if (const std::optional<metrics::EnergyCounters> end = metrics::machine_powercap().read()) {
        const double joules = metrics::machine_powercap().joules_between(*energy_, *end);
        energy = "energy " + std::to_string(joules) + " J" +
                 (tokens ? " (" + std::to_string(joules * 1e3 / static_cast<double>(tokens)) + " mJ per token)" : "");
      }
    }
    return "cost: CPU " + std::to_string(cpu) + " s (" + std::to_string(static_cast<int64_t>(per_token)) +
           " us per generated token over " + std::to_string(tokens) + " tokens), wall " +
           std::to_string(now.wall - start_.wall) + " s, " + energy;
  }

 private:
  metrics::CpuSample start_;
  std::optional<metrics::EnergyCounters> energy_;
};

// The prompt, then each token as it comes, on stdout.
TokenCallback stream_to_stdout(const BaseModel& base, const std::string& prompt) {
  std::cout << prompt << std::flush;
  return [&base](TokenId id) { std::cout << base.tokenizer->piece(id) << std::flush; };
}

int generate_locally(const ModelFlags& flags, const ParsedArgs& args, const SamplingOptions& options) {
  const AdaptedModel adapted = load_adapted_model(flags, std::cerr);
  const BaseModel& base = adapted.base;
  const std::vector<TokenId> ids = base.tokenizer->encode(args.require("--prompt"), /*add_bos=*/true);
  // The generated text stays the last line (scripts read it): a local run says nothing after it.
  generate(*base.model, adapted.applied(), ids, base.tokenizer->eos(), options,
           stream_to_stdout(base, args.require("--prompt")));
  std::cout << std::endl;
  return 0;
}

int run_split_generate(const ParsedArgs& args, const RunConfig& config, const SamplingOptions& options) {
  const Log log = Log::to_stderr("generate");   // stdout is the text
  set_threads(config.threads, std::cerr);
  const BaseModel base = load_base_model(config.model, config.quant, std::cerr, config.compute);
  const LlamaModel& model = *base.model;
  const std::string id = node_id(config.split.options.client_id, config.secure, "client-0");
  SplitSession session = connect_split_server(config, id, model.n_layers(), log, SplitUse::generation);
  const split::SiteBlocks blocks = client_blocks(session.options, model.n_layers());

  // The site's adapters apply to its own blocks; the split server applies its own to the rest.
  std::optional<lora::AdapterSet> site_adapters;
  if (const std::optional<std::string> path = args.get("--adapter")) {
    const lora::AdapterSet file = lora::load_gguf(*path, model);
    site_adapters = file.subset(blocks.keep_layer());
    const size_t ignored = file.pairs().size() - site_adapters->pairs().size();
    log.info("adapter: " + *path + " (" + std::to_string(site_adapters->pairs().size()) + " projections of this site's blocks" +
        (ignored ? "; " + std::to_string(ignored) + " of the split server's blocks ignored: it applies its own" : "") +
        ")");
  }
  const std::vector<TokenId> ids = base.tokenizer->encode(args.require("--prompt"), /*add_bos=*/true);

  split::SplitDecoderOptions decoder_options;
  decoder_options.split = session.options;
  decoder_options.split.stop = &stop_on_signals();
  decoder_options.server_adapters = server_adapters_from_flag(args.require("--server-adapters"));
  decoder_options.expected_server_adapters = lora::adapted_projections(
      model, config.lora, [&](int64_t layer) { return !blocks.contains(layer); });
  decoder_options.capacity = static_cast<int64_t>(ids.size()) + options.max_new_tokens;  // no more on the server
  split::SplitDecoder decoder(base.model, site_adapters ? &*site_adapters : nullptr, *session.channel,
                              decoder_options);
  decoder.open();
  const std::string site_part =
      blocks.layout == split::SiteLayout::u_shaped
          ? "blocks [0, " + std::to_string(blocks.cut_layer) + ") and [" + std::to_string(blocks.top_cut) + ", " +
                std::to_string(model.n_layers()) + ") and the head here"
          : "blocks [0, " + std::to_string(blocks.cut_layer) + ") here, the rest and the head on the split server";
  log.info("split: " + id + ", " + site_part + ", " +
      wire::to_string(session.options.activation_codec) + " activations to " + session.channel->describe() +
      "; server adapters of round " + std::to_string(decoder.server_round()) + ", " +
      std::to_string(decoder.server_kv_bytes()) + " KV cache bytes there");

  const GenerationCost cost;
  const std::vector<TokenId> generated =
      generate(decoder, ids, base.tokenizer->eos(), options, stream_to_stdout(base, args.require("--prompt")));
  std::cout << std::endl;
  decoder.close();
  log.info(cost.describe(generated.size()) + " (this site's share; the split server logs its own at the close)");
  const uint64_t sent = decoder.bytes().total_bytes(wire::Direction::sent);
  const uint64_t received = decoder.bytes().total_bytes(wire::Direction::received);
  const double per_token = generated.empty() ? 0.0 : static_cast<double>(sent + received) / generated.size();
  log.info("split: " + std::to_string(generated.size()) + " tokens, " + std::to_string(decoder.requests()) +
      " requests, " + std::to_string(sent) + " bytes sent, " + std::to_string(received) + " received (" +
      std::to_string(static_cast<int64_t>(per_token)) + " per generated token)");
  return 0;
}

}  // namespace

ArgParser generate_parser() {
  const SamplingOptions defaults;
  ArgParser parser("cleave generate", "--model FILE.gguf --prompt TEXT [options] | --config FILE.yaml --prompt TEXT",
                   "Continues the prompt and streams the text to stdout (model and thread\n"
                   "information go to stderr). Temperature 0 is greedy decoding.\n"
                   "With --config, the model, runtime, split: and secure: sections come from the\n"
                   "file `cleave train` reads: with split: the site runs the embeddings and its\n"
                   "blocks (and in u_shaped its top blocks and the head), the split server the\n"
                   "rest in a generation session; --adapter is then the site's adapter.");
  add_model_flags(parser)
      .value("--config", "FILE", "a run configuration (YAML) instead of --model and the runtime flags", "-c")
      .value("--set", "KEY=VALUE", "with --config: override a key (repeatable)")
      .value("--server-adapters", "WHICH",
             "with split: global (the server's global adapters) or own\n"
             "(SFL-V1: this site's copy on the server)")
      .defaults_to("global")
      .value("--prompt", "TEXT", "the text to continue (BOS is added)")
      .value("--n-predict", "N", "new tokens at most; stops early at EOS", "-n").defaults_to(defaults.max_new_tokens)
      .value("--temperature", "T", "0: greedy; higher: more random").defaults_to(defaults.temperature)
      .value("--top-k", "K", "sample from the K most likely tokens; 0: all").defaults_to(defaults.top_k)
      .value("--top-p", "P", "sample from the smallest set with probability P").defaults_to(defaults.top_p)
      .value("--seed", "S", "sampling seed: the same seed gives the same text").defaults_to(defaults.seed);
  return add_runtime_flags(parser);
}

int run_generate(const ParsedArgs& args) {
  const SamplingOptions options = read_sampling(args);
  if (const std::optional<std::string> config_path = args.get("--config")) {
    for (const char* flag : {"--model", "--quant", "--device", "--precision", "--threads"}) {
      if (args.has(flag)) {
        throw UsageError(std::string(flag) + " does not go with --config: set model:, base.quant or runtime: there");
      }
    }
    // Generation reads no data: data.train, which `cleave train` requires, is
    // filled in so that a file written for generation alone need not name any.
    std::vector<Override> overrides{{"data.train", "(not read by cleave generate)"}};
    for (const std::string& text : args.all("--set")) overrides.push_back(parse_override(text));
    const RunConfig config = load_config(*config_path, overrides);
    if (config.split.enabled()) return run_split_generate(args, config, options);
    ModelFlags flags;
    flags.model = config.model;
    flags.adapter = args.get("--adapter");
    flags.quant = config.quant;
    flags.compute = config.compute;
    flags.threads = config.threads;
    return generate_locally(flags, args, options);
  }
  if (args.has("--set") || args.has("--server-adapters")) throw UsageError("--set and --server-adapters need --config");
  return generate_locally(read_model_flags(args), args, options);
}

}  // namespace cleave::cli
