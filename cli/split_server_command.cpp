// cleave split-server --config FILE.yaml [--set key=value ...]: serves the
// top blocks of the base model for many split clients until SIGINT/SIGTERM.
#include <atomic>
#include <iostream>
#include <memory>

#include "cli/base_model.h"
#include "cli/commands.h"
#include "cli/config_services.h"
#include "cli/secure_channels.h"
#include "cli/service_runtime.h"
#include "split/peer_policy.h"
#include "split/split_server.h"

namespace cleave::cli {

ArgParser split_server_parser() {
  return ArgParser("cleave split-server", "--config FILE.yaml [--set key=value ...] [--log-level LEVEL]",
                   "Runs a split server: blocks [cut_layer, L) of the frozen base model with the\n"
                   "server's own LoRA adapters, for every client at once, each from its own cut.\n"
                   "Also serves sites' generation sessions (split inference: `cleave generate\n"
                   "--config` with split:). Accepts certificates of role client (training,\n"
                   "generation) and aggregator (closing rounds); everything else is refused.\n"
                   "Multi-hop: with split_server.next it runs blocks up to next.cut_layer and\n"
                   "relays the rest to that split server (presenting its own certificate); a\n"
                   "later hop sets split_server.previous and serves only that split server.\n"
                   "Prints `listening on <endpoint>` once bound and one line per event. SIGINT\n"
                   "or SIGTERM stops it within a second, status 0: the open round's unfinished\n"
                   "work is dropped and the checkpoint (split_server.checkpoint, written when a\n"
                   "round closes) stands; restarted, the aggregator brings it back in step. See\n"
                   "configs/split-server.yaml.")
      .value("--config", "FILE", "the split server's configuration (YAML)", "-c")
      .value("--set", "KEY=VALUE", "override a configuration key (repeatable)")
      .value("--log-level", "LEVEL", log_level_help());
}

int run_split_server(const ParsedArgs& args) {
  std::vector<Override> overrides;
  for (const std::string& text : args.all("--set")) overrides.push_back(parse_override(text));
  const std::optional<LogLevel> log_level = log_level_flag(args);   // a bad level before a bad file
  const SplitServerFile config = load_split_server_config(args.require("--config"), overrides);
  const Log log = service_log("split-server", log_level.value_or(config.logging.level));
  const std::atomic<bool>& stop = stop_on_signals();

  metrics::Registry registry;
  std::unique_ptr<metrics::HttpEndpoint> metrics_endpoint = serve_metrics(config.metrics, registry, log);
  if (metrics_endpoint) metrics_endpoint->set_not_ready("loading the base model");
  set_threads(config.threads, std::cout);
  const BaseModel base = load_base_model(config.model, config.quant, std::cout, config.compute);
  split::SplitServerOptions options = config.split_server.options;
  options.lora = config.lora;
  split::SplitServer server(base.model, options, std::nullopt, log);
  if (options.next.enabled()) {
    server.connect_next_hop(connect_service(options.next.address, config.secure, secure::NodeRole::split_server,
                                            options.next.name, options.max_message_bytes, log),
                            &stop);
  }
  server.export_metrics(registry);
  // Every 50 rounds, malloc's view of the heap, as the aggregator logs it.
  server.on_round_closed([log](uint32_t round) {
    if (round % 50 == 49) log.info("memory after round " + std::to_string(round) + ": " + heap_report());
  });
  std::unique_ptr<net::ServerChannel> channel =
      bind_service(config.split_server.bind, config.secure, split::split_server_policy(config.split_server.previous),
                   options.max_message_bytes, log, &registry);
  log.info(std::string("serving blocks [") + std::to_string(options.min_cut_layer) + ", " +
           (options.next.enabled() ? std::to_string(options.next.cut_layer) + ") then the split server at " +
                                         options.next.address
                                   : std::to_string(base.model->n_layers()) + ")") +
           (config.split_server.previous.empty() ? "" : ", for split server " + config.split_server.previous) + " as " +
           (options.variant == split::ServerVariant::sfl_v1 ? "SFL-V1" : "SFL-V2") + " at round " +
           std::to_string(server.round()) + (config.secure.insecure ? " (plaintext)" : " (TLS 1.3)"));
  log.info("listening on " + channel->endpoint());
  if (metrics_endpoint) metrics_endpoint->set_ready();   // bound, certificates loaded, checkpoint read
  server.serve(*channel, stop);
  // The round's unfinished work lives only in memory; the aggregator runs the
  // round again after a restart (split::SplitServer::sync_round).
  log.info("stopping at round " + std::to_string(server.round()) + " (signal); its unfinished work is dropped" +
           (options.checkpoint_path.empty()
                ? std::string("; no split_server.checkpoint: a restart starts from fresh adapters")
                : "; " + options.checkpoint_path + " (round " + std::to_string(server.round()) + ") stands"));
  return 0;
}

}  // namespace cleave::cli
