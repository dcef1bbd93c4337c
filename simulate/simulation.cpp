#include "simulate/simulation.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "aggregator/global_adapters.h"
#include "lora/adapter_gguf.h"
#include "metrics/powercap_meter.h"
#include "model/llama_model.h"
#include "secure/tls_channel.h"
#include "simulate/convergence.h"
#include "simulate/fleet_pki.h"
#include "simulate/line_chart.h"
#include "util/stopwatch.h"

namespace fs = std::filesystem;

namespace cleave::simulate {
namespace {

// Log lines of every role to one file, from any thread: "<LEVEL> <line>".
class LogFile {
 public:
  explicit LogFile(const std::string& path) : out_(path, std::ios::trunc) {
    if (!out_) throw std::runtime_error(path + ": cannot write the log (is the run directory writable?)");
  }
  void write(LogLevel level, const std::string& line) {
    std::lock_guard<std::mutex> lock(mutex_);
    out_ << log_level_tag(level) << ' ' << line << std::endl;
  }

 private:
  std::mutex mutex_;
  std::ofstream out_;
};

// How the fleet's channels are protected, for the start of its output.
std::string channels_line(const SimulationConfig& config) {
  const std::string transport = fleet_transport_name(config.fleet.transport);
  if (config.insecure) {
    return "WARNING " + secure::insecure_warning("every channel of this fleet (" + transport + ")") +
           " (secure.insecure: true)";
  }
  return "channels: TLS 1.3 with mutual authentication (" + transport + "), throw-away CA for this run in " +
         fleet_pki_dir(config.output_dir);
}

// What the sites keep and what leaves them, for the run's output and summary.
std::string layout_line(const SimulationConfig& config, int64_t n_layers) {
  const FleetOptions& fleet = config.fleet;
  if (fleet.mode == FleetMode::nosplit) {
    return "sites train every block; adapter deltas and metrics leave them, no activations";
  }
  const split::SiteBlocks blocks = fleet.site_blocks(n_layers);
  if (fleet.split_mode == split::SplitMode::u_shaped) {
    return "u_shaped: sites run blocks [0, " + std::to_string(blocks.cut_layer) + ") and [" +
           std::to_string(blocks.top_cut) + ", " + std::to_string(n_layers) + "), the head and the loss; the " +
           "split server runs [" + std::to_string(blocks.cut_layer) + ", " + std::to_string(blocks.top_cut) +
           ") and sees activations and gradients only (no labels)";
  }
  return "WARNING vanilla: sites run blocks [0, " + std::to_string(blocks.cut_layer) +
         ") and send their labels, the next-token ids (their text), to the split server with every step; "
         "federation.split_mode: u_shaped keeps them at the sites";
}

std::string fixed(double value, int digits = 3) {
  if (value <= 0) return "-";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

// Runs a fleet into config.output_dir with a progress line per round on `out`.
FleetResult run_fleet(const SimulationConfig& config, std::shared_ptr<const LlamaModel> model, const FleetData& data,
                      const std::string& label, std::ostream& out, FleetRanks* ranks = nullptr) {
  const std::string& dir = config.output_dir;
  fs::create_directories(dir);
  LogFile log(dir + "/fleet.log");
  MetricsFiles files(dir);
  out << label << ": " << data.sites.size() << " sites registered, "
      << (config.fleet.clients_per_round > 0 ? config.fleet.clients_per_round
                                             : static_cast<int64_t>(data.sites.size()))
      << " per round" << (config.fleet.sampling == aggregator::ClientSampling::passes ? " (in passes)" : "") << ", "
      << config.fleet.rounds << " rounds of "
      << (config.fleet.local_epochs > 0 ? fixed(config.fleet.local_epochs, 2) + " local epochs, "
                                        : std::to_string(config.train.steps) + " local steps, ")
      << fleet_mode_name(config.fleet.mode)
      << (config.fleet.mode == FleetMode::split ? " at cut " + std::to_string(config.fleet.cut_layer) : std::string())
      << ", " << config.fleet.workers << " worker(s), " << fleet_transport_name(config.fleet.transport) << "\n";
  out << "  " << layout_line(config, model->n_layers()) << "\n";
  out << "  " << channels_line(config) << std::endl;
  Fleet fleet(model, data, config,
              Log([&log](LogLevel level, const std::string& line) { log.write(level, line); }, config.log_level));
  FleetResult result = fleet.run(
      [&](const RoundMetrics& metrics) {
        files.write(metrics);
        if (config.fleet.progress) out << "  " << progress_line(metrics) << std::endl;
      },
      ranks);
  if (result.failed) {
    throw std::runtime_error(label + " failed after " + std::to_string(result.rounds.size()) +
                             " rounds: " + result.failure + " (see " + dir + "/fleet.log)");
  }
  aggregator::save_global_adapters(result.client_adapters, dir + "/adapters_client.gguf",
                                   {{"cleave.round", std::to_string(result.rounds.size())}});
  if (config.fleet.mode == FleetMode::split) {
    lora::save_gguf(result.server_adapters, *model, dir + "/adapters_server.gguf",
                    {{"cleave.round", std::to_string(result.rounds.size())}});
  }
  lora::save_gguf(result.adapters, *model, dir + "/adapter.gguf",
                  {{"cleave.round", std::to_string(result.rounds.size())}});
  return result;
}

double final_perplexity(const std::vector<RoundMetrics>& rounds) {
  for (auto it = rounds.rbegin(); it != rounds.rend(); ++it) {
    if (it->eval_perplexity > 0) return it->eval_perplexity;
  }
  return 0;
}

uint64_t total_bytes(const std::vector<RoundMetrics>& rounds) {
  return rounds.empty() ? 0 : rounds.back().cumulative.total();
}

int64_t trained_tokens(const std::vector<RoundMetrics>& rounds) {
  return rounds.empty() ? 0 : rounds.back().cumulative_train_tokens;
}

// "12", or "7 (converged)" when the run stopped by federation.stop_patience.
std::string rounds_cell(size_t rounds, int64_t converged_round) {
  return std::to_string(rounds) + (converged_round > 0 ? " (converged)" : "");
}


std::string relative_to(double value, double reference) {
  if (value <= 0 || reference <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.2f%%", 100.0 * (value / reference - 1.0));
  return buf;
}

std::string summary_text(const SimulationConfig& config, const FleetData& data, const SimulationResult& r,
                         int64_t n_layers) {
  const double reference = r.centralized ? final_perplexity(r.centralized->rounds) : 0;
  std::ostringstream md;
  md << "# Simulation summary\n\n";
  md << "- model: `" << config.model << "` (base " << to_string(config.quant) << "), LoRA rank " << config.lora.rank
     << "\n";
  md << "- sites: " << data.sites.size() << " registered (" << data::partition_kind_name(config.fleet.partition)
     << " partition), " << (config.fleet.clients_per_round > 0 ? config.fleet.clients_per_round
                                                              : static_cast<int64_t>(data.sites.size()))
     << " per round" << (config.fleet.sampling == aggregator::ClientSampling::passes ? " (in passes: each site once per pass)" : "")
     << "; " << config.fleet.rounds << " rounds of "
     << (config.fleet.local_epochs > 0 ? fixed(config.fleet.local_epochs, 2) + " local epochs"
                                       : std::to_string(config.train.steps) + " local steps")
     << "; batch " << config.batches.batch_size << " x " << config.batches.seq_len
     << (config.fleet.data_fraction < 1 ? "; federation.data_fraction " + fixed(config.fleet.data_fraction, 3)
                                        : std::string())
     << "\n";
  const int64_t left_out = static_cast<int64_t>(data.sites.size()) - r.fleet.registered;
  if (config.fleet.run_fleet && left_out > 0 && r.fleet.registered > 0) {
    md << "- " << left_out << " site(s) too small for one row of seq_len + 1 did not join the fleet (fleet.log names "
       << "them); their records still count for the baselines\n";
  }
  if (config.fleet.stop_patience > 0) {
    md << "- stopping: every run stops once its "
       << ConvergenceCheck(config.fleet.stop_patience, config.fleet.stop_min_improvement).rule()
       << " (validation set: " << data.validation.size() << " examples, "
       << config.fleet.validation_fraction << " of each site's training examples, never trained on, not the "
       << "held-out set), or after federation.rounds\n";
  }
  md << "- global held-out set: " << data.global_eval.size() << " examples"
     << (config.eval_batches > 0 ? " (first " + std::to_string(config.eval_batches) + " batches scored)" : "")
     << "; per-site held-out: " << config.fleet.client_eval_fraction << " of each site"
     << (config.fleet.client_eval_batches > 0
             ? " (first " + std::to_string(config.fleet.client_eval_batches) + " batches per site)"
             : "")
     << "\n";
  md << "- split: " << layout_line(config, n_layers) << "\n";
  md << "- channels: "
     << (config.insecure ? std::string("plaintext (secure.insecure: true): NOT encrypted or authenticated")
                         : "TLS 1.3 with mutual authentication, certificates from a throw-away CA made for the "
                           "run (`pki/`)")
     << "\n\n";
  md << "| run | final held-out perplexity | vs centralized | mean per-site held-out perplexity | total bytes | "
        "tokens trained | rounds | wall time |\n";
  md << "|---|---|---|---|---|---|---|---|\n";
  const std::string fleet_name = config.fleet.mode == FleetMode::split ? "split-federated" : "federated (no split)";
  if (config.fleet.run_fleet) {
    md << "| " << fleet_name << " | " << fixed(final_perplexity(r.fleet.rounds)) << " | "
       << relative_to(final_perplexity(r.fleet.rounds), reference) << " | " << fixed(r.fleet_site_perplexity)
       << " | " << total_bytes(r.fleet.rounds) << " | " << trained_tokens(r.fleet.rounds) << " | "
       << rounds_cell(r.fleet.rounds.size(), r.fleet.converged_round) << " | " << format_duration(r.seconds)
       << " |\n";
  }
  if (r.centralized) {
    md << "| centralized | " << fixed(reference) << " | +0.00% | " << fixed(r.centralized_site_perplexity)
       << " | 0 | " << trained_tokens(r.centralized->rounds) << " | "
       << rounds_cell(r.centralized->rounds.size(), r.centralized->converged_round) << " | "
       << format_duration(r.centralized_seconds) << " |\n";
  }
  if (r.local_only) {
    int64_t tokens = 0;
    for (const LocalOnlySite& site : r.local_only->sites) tokens += site.steps;
    tokens *= config.batches.batch_size * config.batches.seq_len;
    md << "| local-only (mean over sites) | " << fixed(r.local_only->mean_global_perplexity()) << " | "
       << relative_to(r.local_only->mean_global_perplexity(), reference) << " | "
       << fixed(r.local_only->mean_own_perplexity()) << " | 0 | " << tokens << " | - | "
       << format_duration(r.local_only->seconds) << " |\n";
  }
  if (r.fedavg_nosplit) {
    const double ppl = final_perplexity(r.fedavg_nosplit->rounds);
    md << "| FedAvg without split | " << fixed(ppl) << " | " << relative_to(ppl, reference) << " | "
       << fixed(r.fedavg_nosplit_site_perplexity) << " | " << total_bytes(r.fedavg_nosplit->rounds) << " | "
       << trained_tokens(r.fedavg_nosplit->rounds) << " | "
       << rounds_cell(r.fedavg_nosplit->rounds.size(), r.fedavg_nosplit->converged_round) << " | "
       << format_duration(r.fedavg_nosplit_seconds) << " |\n";
  }
  md << "\nFinal held-out perplexity: the final adapters on the global held-out set. Per-site: the same adapters "
        "on each site's own held-out split, averaged over sites (local-only: each site's own adapters on its own "
        "split). Total bytes: every frame through the aggregator and the split server, both directions. Tokens "
        "trained: input positions of every optimizer step (steps x batch x seq_len), all sites together. Rounds: "
        "federation rounds run (centralized: rounds' worth of the fleet's steps).\n";
  if (!config.fleet.run_fleet) {
    md << "\nOnly the baselines ran (federation.run_fleet: false).\n";
    return md.str();
  }
  md << "\nSite instances (" << fleet_name << "): " << r.fleet.sites_instantiated << " made over the run, at most "
     << r.fleet.peak_live_sites << " alive at once, for " << r.fleet.registered << " registered sites"
     << (r.fleet.processes > 1 ? " (rank 0's of " + std::to_string(r.fleet.processes) +
                                     " processes; each other rank logs its own in fleet.rank-N.log)"
                               : std::string())
     << ".\n";
  if (!r.fleet.rounds.empty()) {
    const ChannelBytes& b = r.fleet.rounds.back().cumulative;
    md << "\n" << fleet_name << " bytes by channel: activations up " << b.activations_up << " (of which labels "
       << b.labels_up << "), activations down " << b.activations_down << ", gradients up " << b.gradients_up
       << ", gradients down " << b.gradients_down << ", adapters up " << b.adapters_up << ", adapters down "
       << b.adapters_down << ", control " << b.control << ".\n";
    if (config.fleet.mode == FleetMode::split) {
      md << "\nLabel bytes sent to the split server (the sites' next-token ids, that is their text): "
         << b.labels_up
         << (b.labels_up == 0 ? " (u_shaped: the labels never left the sites).\n"
                              : " (vanilla: every step carried its batch's labels).\n");
    }
    const aggregator::DpOptions& dp = config.fleet.dp;
    if (dp.enabled && r.fleet.rounds.back().dp_epsilon) {
      md << "\nClient-level differential privacy (DP-FedAvg, "
         << (dp.distributed_noise ? "distributed noise: each site adds its share before masking" : "central noise")
         << "): epsilon "
         << fixed(*r.fleet.rounds.back().dp_epsilon) << " at delta " << dp.delta << " after "
         << r.fleet.rounds.size() << " rounds; every site's delta clipped to " << dp.clip_norm
         << ", sites Poisson-sampled at " << config.fleet.clients_per_round << " / " << r.fleet.registered
         << " per round" << (dp.target_epsilon > 0 ? ", budget epsilon " + fixed(dp.target_epsilon) : std::string())
         << ". The baselines above run without DP.\n";
    } else {
      md << "\nNo differential privacy (federation.dp.enabled: false).\n";
    }
    const aggregator::SecureAggregationOptions& secure = config.fleet.secure_aggregation;
    if (secure.enabled) {
      md << "\nSecure aggregation (Bonawitz et al. 2017, with the consistency check): the aggregator saw only each "
            "round's sum and the mean of the sites' metrics; threshold more than "
         << secure.threshold << " of the sampled sites, fixed point 2^-" << secure.scale_bits << ", coordinates clipped to +/-"
         << secure.clip_range << ".\n";
    } else {
      md << "\nNo secure aggregation (federation.secure_aggregation.enabled: false): the aggregator saw each site's "
            "update and metrics.\n";
    }
    if (r.fleet.rounds.front().cost) {
      RoundCost cost = *r.fleet.rounds.front().cost;
      for (size_t i = 1; i < r.fleet.rounds.size(); ++i) cost += r.fleet.rounds[i].cost.value_or(RoundCost{});
      md << cost_table(cost, metrics::machine_powercap().status(), config.fleet.workers);
    }
  }
  return md.str();
}

Series per_round(const std::string& name, size_t color, const std::vector<RoundMetrics>& rounds,
                 double (*value)(const RoundMetrics&)) {
  Series s{name, series_color(color), {}, {}};
  for (const RoundMetrics& m : rounds) {
    const double v = value(m);
    if (v <= 0) continue;
    s.x.push_back(static_cast<double>(m.round));
    s.y.push_back(v);
  }
  return s;
}

}  // namespace

Image simulation_plot(const SimulationResult& r, const std::string& title) {
  const bool split = r.fleet.rounds.empty() || r.fleet.rounds.back().cumulative.activations_up > 0;
  const std::string fleet_name = split ? "split-fed" : "fed (no split)";
  auto ppl = [](const RoundMetrics& m) { return m.eval_perplexity; };
  auto loss = [](const RoundMetrics& m) { return m.train_loss; };

  Panel perplexity{title + ": held-out perplexity", "round", "perplexity", {}};
  perplexity.series.push_back(per_round(fleet_name, 0, r.fleet.rounds, ppl));
  if (r.centralized) perplexity.series.push_back(per_round("centralized", 1, r.centralized->rounds, ppl));
  if (r.fedavg_nosplit) perplexity.series.push_back(per_round("fedavg no split", 2, r.fedavg_nosplit->rounds, ppl));
  if (r.local_only && !r.fleet.rounds.empty()) {
    const double v = r.local_only->mean_global_perplexity();
    perplexity.series.push_back({"local-only mean", series_color(3), {1.0, static_cast<double>(r.fleet.rounds.size())}, {v, v}});
  }

  Panel train{"train loss, mean over the sampled sites", "round", "loss", {}};
  train.series.push_back(per_round(fleet_name, 0, r.fleet.rounds, loss));
  if (r.centralized) train.series.push_back(per_round("centralized", 1, r.centralized->rounds, loss));
  if (r.fedavg_nosplit) train.series.push_back(per_round("fedavg no split", 2, r.fedavg_nosplit->rounds, loss));

  Panel bytes{"cumulative bytes on the wire", "round", "MB", {}};
  auto mb = [](uint64_t b) { return static_cast<double>(b) / 1e6; };
  Series activations{"activations", series_color(4), {}, {}}, gradients{"gradients", series_color(5), {}, {}},
      adapters{"adapters", series_color(6), {}, {}}, total{fleet_name + " total", series_color(0), {}, {}};
  for (const RoundMetrics& m : r.fleet.rounds) {
    const double x = static_cast<double>(m.round);
    const ChannelBytes& c = m.cumulative;
    activations.x.push_back(x);
    activations.y.push_back(mb(c.activations_up + c.activations_down));
    gradients.x.push_back(x);
    gradients.y.push_back(mb(c.gradients_up + c.gradients_down));
    adapters.x.push_back(x);
    adapters.y.push_back(mb(c.adapters_up + c.adapters_down));
    total.x.push_back(x);
    total.y.push_back(mb(c.total()));
  }
  bytes.series = {total, activations, gradients, adapters};
  if (r.fedavg_nosplit) {
    Series nosplit{"fedavg no split total", series_color(2), {}, {}};
    for (const RoundMetrics& m : r.fedavg_nosplit->rounds) {
      nosplit.x.push_back(static_cast<double>(m.round));
      nosplit.y.push_back(mb(m.cumulative.total()));
    }
    bytes.series.push_back(nosplit);
  }
  return render_chart({perplexity, train, bytes});
}

SimulationResult run_simulation(const SimulationConfig& config, std::shared_ptr<const LlamaModel> model,
                                const FleetData& data, std::ostream& out, FleetRanks* ranks) {
  config.validate();
  const std::string& dir = config.output_dir;
  fs::create_directories(dir);
  SimulationResult result;

  auto start = SteadyTime::now();
  if (config.fleet.run_fleet) {
    const std::string label = config.fleet.mode == FleetMode::split ? "split-federated" : "federated (no split)";
    result.fleet = run_fleet(config, model, data, label, out, ranks);
    result.seconds = seconds_since(start);
    result.fleet_site_perplexity = mean_site_perplexity(*model, result.fleet.adapters, data, config);
  }

  for (Baseline baseline : config.fleet.parsed_baselines()) {
    const std::string baseline_dir = dir + "/baselines/" + baseline_name(baseline);
    fs::create_directories(baseline_dir);
    start = SteadyTime::now();
    switch (baseline) {
      case Baseline::centralized:
        result.centralized = run_centralized(model, data, config, baseline_dir, out);
        result.centralized_seconds = seconds_since(start);
        result.centralized_site_perplexity = mean_site_perplexity(*model, result.centralized->adapters, data, config);
        out << "  centralized: held-out perplexity " << fixed(final_perplexity(result.centralized->rounds)) << "\n";
        break;
      case Baseline::local_only:
        result.local_only = run_local_only(model, data, config, baseline_dir, out);
        out << "  local_only: mean held-out perplexity " << fixed(result.local_only->mean_own_perplexity())
            << " (own split), " << fixed(result.local_only->mean_global_perplexity()) << " (global set)\n";
        break;
      case Baseline::fedavg_nosplit: {
        SimulationConfig nosplit = config;
        nosplit.fleet.mode = FleetMode::nosplit;
        nosplit.output_dir = baseline_dir;
        result.fedavg_nosplit = run_fleet(nosplit, model, data, "fedavg_nosplit", out);
        result.fedavg_nosplit_seconds = seconds_since(start);
        result.fedavg_nosplit_site_perplexity =
            mean_site_perplexity(*model, result.fedavg_nosplit->adapters, data, config);
        break;
      }
    }
  }

  result.summary = summary_text(config, data, result, model->n_layers());
  {
    std::ofstream md(dir + "/summary.md", std::ios::trunc);
    md << result.summary;
    if (!md) throw std::runtime_error(dir + "/summary.md: cannot write");
  }
  write_png(simulation_plot(result, "simulation"), dir + "/plot.png");
  out << "run directory: " << dir << " (metrics.csv, metrics.jsonl, plot.png, summary.md, adapter.gguf)\n";
  return result;
}

}  // namespace cleave::simulate
