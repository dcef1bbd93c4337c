// cleave simulate [--config FILE] [--set key=value ...] [--out DIR] [--baselines]:
// a simulated fleet (aggregator, split server and the sites in one process)
// from a YAML configuration, or, without --config, the built-in default: the
// demo's generated notes split over 6 sites by a Dirichlet draw over their
// condition, on the demo's random model, needing no downloads.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/base_model.h"
#include "cli/commands.h"
#include "cli/config.h"
#include "cli/demo_corpus.h"
#include "cli/service_runtime.h"
#include "model/vocab_builder.h"
#include "simulate/fleet.h"
#include "simulate/fleet_data.h"
#include "simulate/fleet_ranks.h"
#include "simulate/simulation.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace cleave::cli {
namespace {

constexpr size_t kDefaultNotes = 2400;
constexpr uint64_t kCorpusSeed = 2024;
constexpr uint64_t kModelSeed = 7;

// The built-in fleet's data and model in `dir`; returns its configuration as
// YAML, so --set overrides apply to it as to a file.
std::string write_default_fleet(const std::string& dir) {
  fs::create_directories(dir);
  const std::vector<std::string> notes = clinical_notes(kDefaultNotes, kCorpusSeed);
  {
    std::ofstream out(dir + "/notes.jsonl", std::ios::trunc);
    for (const std::string& note : notes) {
      json::Value record = json::Value::object();
      record.set("text", note);
      record.set("condition", note_condition(note));
      out << record.dump() << "\n";
    }
    if (!out) throw std::runtime_error(dir + "/notes.jsonl: cannot write the built-in fleet's data");
  }
  write_demo_model(dir + "/model.gguf", build_vocabulary(notes), kModelSeed);
  return "model: " + dir + "/model.gguf\n"
         "base: {quant: int8}\n"
         "lora: {rank: 8, alpha: 16.0}\n"
         "data: {train: " + dir + "/notes.jsonl, eval_fraction: 0.1, seq_len: 64, batch_size: 8}\n"
         "train: {steps: 10, lr: 0.01, warmup_steps: 2, seed: 1}\n"
         "federation:\n"
         "  clients: 6\n"
         "  partition: dirichlet\n"
         "  alpha: 0.5\n"
         "  label_field: condition\n"
         "  client_eval_fraction: 0.1\n"
         "  rounds: 8\n"
         "  clients_per_round: 3\n"
         "  mode: split\n"
         "  cut_layer: 1\n"
         "  workers: 1\n"
         "output: {dir: " + dir + "}\n";
}

simulate::SimulationConfig simulation_config(const SimulateConfig& config) {
  const RunConfig& run = config.run;
  simulate::SimulationConfig s;
  s.model = run.model;
  s.quant = run.quant;
  s.lora = run.lora;
  s.train_files = {run.data.train};
  s.eval_file = run.data.eval;
  s.chat_template = run.data.chat_template;
  s.eval_fraction = run.data.eval_fraction;
  s.eval_batches = run.data.eval_batches;
  s.batches.batch_size = run.data.batch_size;
  s.batches.seq_len = run.data.seq_len;
  s.batches.mode = run.data.mode;
  s.batches.seed = run.seed;
  s.train = run.train;
  s.seed = run.seed;
  s.threads = run.threads;
  s.fleet = config.federation;
  s.output_dir = run.output_dir;
  s.insecure = run.secure.insecure;
  s.handshake_timeout_ms = run.secure.handshake_timeout_ms;
  return s;
}

}  // namespace

ArgParser simulate_parser() {
  return ArgParser("cleave simulate",
                   "[--config FILE.yaml] [--set key=value ...] [--out DIR] [--baselines] [--log-level LEVEL]",
                   "Runs a simulated fleet in one process: the aggregator, a split server and the\n"
                   "sites of `federation:` (N registered, a few sampled per round), with the same\n"
                   "role code as `cleave aggregator` / `split-server` / `client`. Writes metrics.csv,\n"
                   "metrics.jsonl, plot.png, summary.md and the final adapters to the run directory.\n"
                   "Every channel is mutual TLS 1.3 under a throw-away CA made for the run in\n"
                   "<run directory>/pki; plaintext only with --set secure.insecure=true (warned).\n"
                   "Without --config: the built-in fleet (6 sites, Dirichlet split of generated\n"
                   "notes, random demo model), needing no downloads.")
      .value("--config", "FILE", "YAML configuration (see configs/simulate.yaml)", "-c")
      .value("--set", "KEY=VALUE", "override a configuration key (repeatable)")
      .value("--out", "DIR", "run directory (with --config: overrides output.dir)").defaults_to("runs/simulate")
      .toggle("--baselines", "also run centralized, local_only and fedavg_nosplit and compare")
      .value("--log-level", "LEVEL", "the lowest level fleet.log keeps: " + log_level_choices())
      .defaults_to(log_level_name(LogLevel::info));
}

namespace {
int simulate_on_this_rank(const ParsedArgs& args, simulate::FleetRanks* ranks);
}  // namespace

int run_simulate(const ParsedArgs& args) {
  // Under mpirun or srun the fleet's sites are spread over the processes
  // (simulate/fleet_ranks.h); a failing rank ends them all.
  std::unique_ptr<simulate::FleetRanks> ranks = simulate::launched_ranks();
  if (!ranks) return simulate_on_this_rank(args, nullptr);
  try {
    return simulate_on_this_rank(args, ranks.get());
  } catch (const std::exception& e) {
    std::cerr << "cleave simulate: error: " << ranks->describe() << ": " << e.what() << std::endl;
    ranks->abort(1);
  }
  return 1;   // not reached: abort() ends the process
}

namespace {

int simulate_on_this_rank(const ParsedArgs& args, simulate::FleetRanks* ranks) {
  const bool rank0 = !ranks || ranks->rank() == 0;
  const LogLevel log_level = *log_level_flag(args);
  std::vector<Override> overrides;
  for (const std::string& text : args.all("--set")) overrides.push_back(parse_override(text));
  SimulateConfig config;
  if (const std::optional<std::string> path = args.get("--config")) {
    if (args.has("--out")) overrides.push_back({"output.dir", *args.get("--out")});
    config = load_simulate_config(*path, overrides);
  } else {
    const std::string dir = args.require("--out");
    // Rank 0 writes the built-in fleet's files; the other ranks read them once it has.
    std::string fleet_yaml;
    if (rank0) {
      std::cout << "simulate: no --config, running the built-in fleet in " << dir << "\n";
      fleet_yaml = write_default_fleet(dir);
    }
    if (ranks) ranks->broadcast(fleet_yaml);
    config = parse_simulate_config(fleet_yaml, "built-in fleet", overrides);
  }
  if (args.get_switch("--baselines")) config.federation.baselines = simulate::baseline_names();
  const std::string dir = config.run.output_dir;
  if (rank0) {
    fs::create_directories(dir);
    std::ofstream resolved(dir + "/config.resolved.yaml", std::ios::trunc);
    resolved << to_yaml(config);
    if (!resolved) throw std::runtime_error(dir + "/config.resolved.yaml: cannot write");
    if (ranks) std::cout << "simulate: " << ranks->size() << " processes (" << ranks->describe() << ")\n";
  }

  // Workers share the cores, and so do the ranks on one machine: by default
  // each gets its share of intra-op threads.
  int64_t threads = config.run.threads;
  if (threads == 0) {
    const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
    const int64_t local_ranks = ranks ? ranks->local_size() : 1;
    threads = std::max<int64_t>(1, cores / (config.federation.workers * local_ranks));
  }
  // The other ranks say little: rank 0 speaks for the run, they log to <run>/fleet.rank-N.log.
  std::ostringstream quiet;
  std::ostream& out = rank0 ? std::cout : quiet;
  set_threads(threads, out);
  const BaseModel base = load_base_model(config.run.model, config.run.quant, out, config.run.compute);
  simulate::SimulationConfig simulation = simulation_config(config);
  simulation.log_level = log_level;
  const simulate::FleetData data = simulate::load_fleet_data(simulation, *base.tokenizer, out);
  if (!rank0) {
    if (ranks->size() > 1 && !simulation.fleet.run_fleet) return 0;   // only baselines: rank 0 runs them
    const std::string log_path = dir + "/fleet.rank-" + std::to_string(ranks->rank()) + ".log";
    auto log_file = std::make_shared<std::ofstream>(log_path, std::ios::trunc);
    if (!*log_file) throw std::runtime_error(log_path + ": cannot write");
    Log log = Log::to_stream(*log_file, "rank " + std::to_string(ranks->rank()), log_level);
    simulate::Fleet(base.model, data, simulation, log).serve_rank(*ranks);
    return 0;
  }
  const simulate::SimulationResult result = simulate::run_simulation(simulation, base.model, data, std::cout, ranks);
  std::cout << "\n" << result.summary;
  return 0;
}

}  // namespace
}  // namespace cleave::cli
