// cleave aggregator --config FILE.yaml [--set key=value ...]: the federation's
// round loop for the registered sites, keeping the split servers' rounds in
// step, until the configured rounds are done or SIGINT/SIGTERM.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "aggregator/aggregator_checkpoint.h"
#include "aggregator/aggregator_service.h"
#include "aggregator/peer_policies.h"
#include "cli/base_model.h"
#include "cli/commands.h"
#include "cli/config_services.h"
#include "cli/config_yaml.h"
#include "cli/secure_channels.h"
#include "cli/service_runtime.h"
#include "secagg/key_signature.h"

namespace cleave::cli {
namespace {

aggregator::GlobalAdapters initial_adapters(const AggregatorFile& config) {
  const AggregatorConfig& a = config.aggregator;
  if (!a.initial_adapters.empty()) return aggregator::load_global_adapters(a.initial_adapters);
  // Only the names and shapes are needed: the model is dropped afterwards.
  std::ostringstream quiet;
  const BaseModel base = load_base_model(config.model, BaseQuant::native, quiet);
  const int64_t L = base.model->n_layers();
  const split::SiteBlocks blocks =
      a.cut_layer == 0 ? split::all_blocks() : split::site_blocks(a.split_mode, a.cut_layer, a.top_cut, L);
  invalid_to_config_error(config.source, [&] { blocks.validate(L, "aggregator."); });
  return aggregator::global_adapters_for_model(*base.model, config.lora, a.options.seed, blocks);
}

// The service logs the round's closing itself; this adds what it wrote.
std::string describe_checkpoint(const aggregator::RoundSummary& summary, const std::string& checkpoint_dir) {
  char line[256];
  std::string text = "round " + std::to_string(summary.round) + " checkpointed: " + checkpoint_dir + "/" +
                     aggregator::checkpoint_adapters_file(summary.round);
  auto loss = summary.metrics.find("train_loss");
  if (loss != summary.metrics.end()) {
    std::snprintf(line, sizeof line, " (mean train_loss %.4f)", loss->second);
    text += line;
  }
  return text;
}

}  // namespace

ArgParser aggregator_parser() {
  return ArgParser("cleave aggregator", "--config FILE.yaml [--set key=value ...] [--log-level LEVEL]",
                   "Runs the federation's aggregator: sites (certificate role client) register,\n"
                   "poll for rounds and send adapter deltas; each round it samples sites, merges\n"
                   "their deltas with the configured strategy, checkpoints the global adapters\n"
                   "(aggregator.checkpoint_dir) and closes the round on every split server\n"
                   "(connecting as role aggregator). Restarted, it resumes after the last\n"
                   "checkpointed round. Prints `listening on <endpoint>` once bound and one line\n"
                   "per event; exits 0 when the rounds are done, 1 if the run failed. SIGINT or\n"
                   "SIGTERM stops it within a second, status 0: an open round is abandoned and\n"
                   "the checkpoint of the last completed round stands (a restart runs the round\n"
                   "again).\n"
                   "Removing a site: a site whose certificate the CRL (secure.crl) revokes is\n"
                   "taken out at once, as is a site named on a line of the file\n"
                   "<aggregator.checkpoint_dir>/removed_sites (re-read when it changes; `#`\n"
                   "starts a comment; e.g. `echo site-b >> state/aggregator/removed_sites`): it\n"
                   "is no longer sampled, leaves an open round at once (the round closes when\n"
                   "the other sampled sites have reported) and is refused if it registers or\n"
                   "polls. Deleting its line lets it register again. See configs/aggregator.yaml.")
      .value("--config", "FILE", "the aggregator's configuration (YAML)", "-c")
      .value("--set", "KEY=VALUE", "override a configuration key (repeatable)")
      .value("--log-level", "LEVEL", log_level_help());
}

int run_aggregator(const ParsedArgs& args) {
  std::vector<Override> overrides;
  for (const std::string& text : args.all("--set")) overrides.push_back(parse_override(text));
  const std::optional<LogLevel> log_level = log_level_flag(args);   // a bad level before a bad file
  const AggregatorFile config = load_aggregator_config(args.require("--config"), overrides);
  const Log log = service_log("aggregator", log_level.value_or(config.logging.level));
  const std::atomic<bool>& stop = stop_on_signals();
  const aggregator::AggregatorOptions& options = config.aggregator.options;
  // Outlives the service, which records into it (its collectors go with it).
  metrics::Registry registry;
  std::unique_ptr<metrics::HttpEndpoint> metrics_endpoint = serve_metrics(config.metrics, registry, log);
  if (metrics_endpoint) metrics_endpoint->set_not_ready("loading the adapters and the checkpoint");

  const SecureConfig tls = config.secure;
  const std::string split_name = config.aggregator.split_server_name;
  aggregator::ChannelFactory split_channels = [tls, split_name, options, log](const std::string& endpoint) {
    return connect_service(endpoint, tls, secure::NodeRole::split_server, split_name,
                           options.max_message_bytes, log);
  };
  aggregator::GlobalAdapters global = initial_adapters(config);
  log.info(global.blocks ? "sites must run " + global.blocks->describe()
                         : std::string("the initial adapters carry no split layout: sites are checked by the "
                                       "adapters' names and shapes only"));
  if (global.blocks && global.blocks->layout == split::SiteLayout::vanilla) {
    log.warning("aggregator.split_mode: vanilla: every site sends its labels (its text) to the split server; "
                "u_shaped keeps them at the sites");
  }
  aggregator::AggregatorService service(options, std::move(global), log, nullptr, split_channels);
  service.export_metrics(registry);
  if (options.secure_aggregation.enabled) {
    // The sites' key and consistency signatures, checked here as well as at
    // every site: one site with a bad signature is left out of the round
    // instead of making every honest site refuse it.
    service.verify_site_signatures(std::make_shared<secagg::KeyVerifier>(tls_identity(config.secure)));
  }
  const std::string checkpoint_dir = options.checkpoint_dir;
  service.on_round_closed([log, checkpoint_dir](const aggregator::RoundSummary& summary,
                                                const aggregator::GlobalAdapters&) {
    if (!checkpoint_dir.empty()) log.info(describe_checkpoint(summary, checkpoint_dir));
    if (summary.round % 50 == 49) {
      log.info("memory after round " + std::to_string(summary.round) + ": " + heap_report());
    }
  });

  if (!checkpoint_dir.empty()) service.watch_removed_sites(checkpoint_dir + "/removed_sites");
  secure::PeerPolicy policy = aggregator::aggregator_policy();
  policy.on_revoked = [&service](const secure::PeerIdentity& peer) {
    if (peer.role == secure::NodeRole::client) {
      service.remove_site(peer.node_id, "its certificate was revoked (the CRL in secure.crl lists it)");
    }
  };
  std::unique_ptr<net::ServerChannel> channel =
      bind_service(config.aggregator.bind, config.secure, std::move(policy), options.max_message_bytes, log,
                   &registry);
  log.info("strategy " + options.strategy.name + ", " + std::to_string(options.rounds) + " rounds, " +
           std::to_string(service.completed_rounds()) + " completed, waiting for " +
           std::to_string(options.registrations_to_start()) + " sites" +
           (config.secure.insecure ? " (plaintext)" : " (TLS 1.3)"));
  log.info("listening on " + channel->endpoint());
  // Bound, certificates loaded, checkpoint read (the service resumed from it).
  if (metrics_endpoint) metrics_endpoint->set_ready();
  service.serve(*channel, stop);

  if (stop.load() && !service.done()) {
    const uint32_t completed = service.completed_rounds();
    const std::optional<uint32_t> open = service.open_round();
    log.info("stopping after " + std::to_string(completed) + " completed rounds (signal)" +
             (open ? "; round " + std::to_string(*open) + " was open and is abandoned (a restart runs it again)"
                   : std::string()) +
             (checkpoint_dir.empty() ? "; no aggregator.checkpoint_dir: a restart starts from round 0"
              : completed == 0       ? "; nothing to checkpoint yet"
                                     : "; the checkpoint after round " + std::to_string(completed - 1) + " in " +
                                           checkpoint_dir + " stands"));
    return 0;
  }
  if (service.state() == aggregator::RunState::failed) {
    log.error("the run failed after " + std::to_string(service.completed_rounds()) + " rounds: " +
              service.failure());
    return 1;
  }
  log.info("finished: " + std::to_string(service.completed_rounds()) + " rounds completed");
  return 0;
}

}  // namespace cleave::cli
