// cleave client --config site.yaml [--set key=value ...]: a hospital site in a
// federation. Registers with the aggregator, and for every round it is
// sampled in trains its client blocks through the split server and sends the
// adapter delta; its data never leaves this process.
#include <cstdio>
#include <iostream>
#include <optional>

#include "aggregator/counted_channel.h"
#include "aggregator/federated_client.h"
#include "cli/base_model.h"
#include "cli/commands.h"
#include "cli/config_services.h"
#include "cli/secure_channels.h"
#include "cli/service_runtime.h"
#include "cli/split_session.h"
#include "client/dataset.h"
#include "lora/adapter_set.h"
#include "metrics/cost_meter.h"
#include "model/chat_template.h"
#include "secagg/key_signature.h"
#include "split/split_metrics.h"
#include "transport/request_retry.h"

namespace cleave::cli {
namespace {

aggregator::FederatedClientOptions site_options(const ClientFile& config, const std::string& id, int32_t pad) {
  const RunConfig& run = config.run;
  aggregator::FederatedClientOptions options;
  options.client_id = id;
  options.train = run.train;
  options.batches.batch_size = run.data.batch_size;
  options.batches.seq_len = run.data.seq_len;
  options.batches.mode = run.data.mode;
  options.batches.seed = run.seed;
  options.batches.pad_token = pad;
  options.request_timeout_ms = config.client.request_timeout_ms;
  options.max_attempts = static_cast<int>(config.client.max_attempts);
  options.backoff_ms = config.client.backoff_ms;
  options.max_backoff_ms = config.client.max_backoff_ms;
  options.max_message_bytes = run.split.options.max_message_bytes;
  return options;
}

// The federated client logs the update's fate; this adds the round's numbers.
std::string describe(const aggregator::SiteRound& round) {
  std::string line = "round " + std::to_string(round.round) + " done here: ";
  if (!round.trained) return line + "no update (" + round.error + ")";
  auto loss = round.metrics.find("train_loss");
  if (loss != round.metrics.end()) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "train_loss %.4f, ", loss->second);
    line += buf;
  }
  return line + std::to_string(round.num_samples) + " samples, update " + (round.accepted ? "accepted" : "rejected") +
         "; cost " + metrics::describe_cost(round.cost);
}

}  // namespace

ArgParser client_parser() {
  return ArgParser("cleave client", "--config site.yaml [--set key=value ...] [--log-level LEVEL]",
                   "Runs a hospital site of a federation: reads the site's data (data.train), loads\n"
                   "the base model, registers with the aggregator (client.aggregator) and, in each\n"
                   "round it is sampled for, trains train.steps local steps of its client blocks\n"
                   "through the split server (split.server) and sends the adapter delta. Only\n"
                   "activations, gradients, adapter deltas and metrics leave the site, over TLS\n"
                   "with the site's certificate (secure:). Exits when the federation finishes\n"
                   "(status 1 if it failed); stops cleanly on SIGINT or SIGTERM.\n"
                   "See configs/site.yaml.")
      .value("--config", "FILE", "the site's configuration (YAML)", "-c")
      .value("--set", "KEY=VALUE", "override a configuration key (repeatable)")
      .value("--log-level", "LEVEL", log_level_help());
}

int run_client(const ParsedArgs& args) {
  std::vector<Override> overrides;
  for (const std::string& text : args.all("--set")) overrides.push_back(parse_override(text));
  const std::optional<LogLevel> log_level = log_level_flag(args);   // a bad level before a bad file
  const ClientFile config = load_client_config(args.require("--config"), overrides);
  const RunConfig& run = config.run;
  const Log log = service_log("client", log_level.value_or(config.logging.level));
  const std::atomic<bool>& stop = stop_on_signals();

  const std::string id = node_id(config.client.id, run.secure, "site-0");
  metrics::Registry registry;
  std::unique_ptr<metrics::HttpEndpoint> metrics_endpoint = serve_metrics(config.metrics, registry, log);
  if (metrics_endpoint) metrics_endpoint->set_not_ready("loading the base model and the data");
  metrics::Counter& rounds_counter = site_rounds_trained_counter(registry);
  set_threads(run.threads, std::cout);
  const BaseModel base = load_base_model(run.model, run.quant, std::cout, run.compute);
  const std::optional<ChatFormat> chat =
      data::choose_chat_format(run.data.chat_template, *base.tokenizer, run.model);
  const std::vector<data::Example> examples =
      data::tokenize_records(*base.tokenizer, data::read_records(run.data.train), chat);
  SplitSession split = connect_split_server(run, id, base.model->n_layers(), log);
  split.options.stop = &stop;
  const split::SiteBlocks blocks = client_blocks(split.options, base.model->n_layers());
  lora::AdapterSet adapters = lora::AdapterSet::create(*base.model, run.lora, run.seed, blocks.keep_layer());
  split::SplitTrainStep step(base.model, adapters, *split.channel, split.options);
  wire::ByteCounter aggregator_bytes;
  // Released before `step` and `aggregator_bytes` go (a scrape in progress is waited for).
  const metrics::Collection channel_bytes =
      split::collect_channel_bytes(registry, {{"split", &step.bytes()}, {"aggregator", &aggregator_bytes}});
  std::unique_ptr<net::ClientChannel> aggregator_channel = std::make_unique<aggregator::CountedClientChannel>(
      connect_service(config.client.aggregator, run.secure, secure::NodeRole::aggregator,
                      config.client.aggregator_name, run.split.options.max_message_bytes, log),
      aggregator_bytes);
  aggregator::FederatedClientOptions options = site_options(config, id, base.tokenizer->eos());
  options.blocks = blocks;
  options.stop = &stop;
  options.secure = config.client.secure_aggregation;
  if (!run.secure.insecure) {
    // Secure aggregation signs this site's round keys with its certificate's key.
    const secure::TlsIdentity identity = tls_identity(run.secure);
    options.signer = std::make_shared<secagg::KeySigner>(identity);
    options.verifier = std::make_shared<secagg::KeyVerifier>(identity);
  }
  aggregator::FederatedClient site(base.model->base_fingerprint(), adapters, step, *aggregator_channel,
                                   examples, options, log);
  log.info("site " + id + ": " + std::to_string(examples.size()) + " examples, " +
           describe_site_blocks(split.options, base.model->n_layers()) + ", split server " + split.channel->describe() +
           ", aggregator " + aggregator_channel->describe());

  adapters.set_training(true);
  int rounds_trained = 0;
  try {
    site.register_site();
    if (metrics_endpoint) metrics_endpoint->set_ready();   // certificates loaded, registered with the aggregator
    while (!stop.load()) {
      aggregator::RoundPoll poll = site.poll_once();
      if (poll.trained) {
        if (poll.trained->trained) {
          ++rounds_trained;
          rounds_counter.inc();
        }
        log(poll.trained->accepted ? LogLevel::info : LogLevel::warning, describe(*poll.trained));
        net::wait_unless_stopped(site.retry_delay_ms(), &stop);   // 0 unless the round failed here
      } else if (poll.wait_ms) {
        net::wait_unless_stopped(*poll.wait_ms, &stop);
      } else if (poll.finished) {
        const aggregator::Finished& finished = *poll.finished;
        if (finished.failed) {
          log.error("the federation stopped: " + finished.reason);
          return 1;
        }
        log.info("the federation finished after " + std::to_string(finished.rounds_completed) + " rounds; this site " +
                 "trained in " + std::to_string(rounds_trained));
        return 0;
      }
    }
  } catch (const net::RequestStopped&) {
    // A signal during a request, a retry or a split step.
  }
  log.info("stopping after " + std::to_string(rounds_trained) + " rounds trained here (signal)");
  return 0;
}

}  // namespace cleave::cli
