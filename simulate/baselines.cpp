#include "simulate/baselines.h"

#include <ATen/ATen.h>

#include <chrono>
#include <fstream>
#include <ostream>

#include "client/evaluate.h"
#include "client/train_step.h"
#include "client/trainer.h"
#include "lora/adapter_gguf.h"
#include "model/llama_model.h"
#include "simulate/convergence.h"
#include "util/stopwatch.h"

namespace cleave::simulate {
namespace {

double perplexity(const LlamaModel& model, const lora::AdapterSet& adapters, const std::vector<data::Batch>& batches) {
  if (batches.empty()) return 0;
  return evaluate(model, &adapters, batches).perplexity();
}

int64_t sites_per_round(const SimulationConfig& config, const FleetData& data) {
  const int64_t n = static_cast<int64_t>(data.sites.size());
  return config.fleet.clients_per_round > 0 ? std::min(config.fleet.clients_per_round, n) : n;
}

// The fleet's optimizer steps in one round, summed over its sites: every
// site's local steps scaled by the share of sites sampled per round.
int64_t fleet_steps_per_round(const SimulationConfig& config, const FleetData& data) {
  const int64_t n = static_cast<int64_t>(data.sites.size());
  int64_t all_sites = 0;
  for (size_t i = 0; i < data.sites.size(); ++i) all_sites += config.site_local_steps(data, i);
  return std::max<int64_t>(1, (all_sites * sites_per_round(config, data) + n / 2) / n);
}

}  // namespace

double LocalOnlyResult::mean_own_perplexity() const {
  double sum = 0;
  int64_t n = 0;
  for (const LocalOnlySite& site : sites) {
    if (site.own_perplexity <= 0) continue;
    sum += site.own_perplexity;
    ++n;
  }
  return n ? sum / static_cast<double>(n) : 0.0;
}

double LocalOnlyResult::mean_global_perplexity() const {
  double sum = 0;
  int64_t n = 0;
  for (const LocalOnlySite& site : sites) {
    if (site.global_perplexity <= 0) continue;   // too little data to train alone
    sum += site.global_perplexity;
    ++n;
  }
  return n ? sum / static_cast<double>(n) : 0.0;
}

double mean_site_perplexity(const LlamaModel& model, const lora::AdapterSet& adapters, const FleetData& data,
                            const SimulationConfig& config, size_t max_sites) {
  double sum = 0;
  int64_t n = 0;
  for (size_t i = 0; i < data.sites.size() && i < max_sites; ++i) {
    const std::vector<data::Batch> batches =
        held_out_batches(data.gather(data.sites[i].eval), config.batches, config.fleet.client_eval_batches);
    if (batches.empty()) continue;
    sum += perplexity(model, adapters, batches);
    ++n;
  }
  return n ? sum / static_cast<double>(n) : 0.0;
}

CentralizedResult run_centralized(std::shared_ptr<const LlamaModel> model, const FleetData& data,
                                  const SimulationConfig& config, const std::string& dir, std::ostream& out) {
  const auto start = SteadyTime::now();
  const int64_t rounds = config.fleet.rounds;
  const int64_t steps_per_round = fleet_steps_per_round(config, data);
  CentralizedResult result;
  result.steps = rounds * steps_per_round;
  out << "centralized: " << data.train_count() << " examples in one place, " << result.steps << " steps ("
      << rounds << " x " << steps_per_round << ", the fleet's total)\n";
  const int64_t tokens_per_step = config.batches.batch_size * config.batches.seq_len;

  result.adapters = lora::AdapterSet::create(*model, config.lora, config.seed);
  LocalTrainStep step(model, result.adapters, config.train.recompute, config.train.micro_batch);
  TrainOptions train = config.train;
  train.steps = result.steps;
  train.eval_every = steps_per_round;
  train.log_every = 0;
  data::BatchOptions batches = config.batches;
  batches.seed = config.seed;
  data::BatchStream stream(data.all_train(), batches);
  const std::vector<data::Batch> global_eval = held_out_batches(data.global_eval, config.batches, config.eval_batches);
  const std::vector<data::Batch> validation = held_out_batches(data.validation, config.batches, config.eval_batches);
  ConvergenceCheck convergence(config.fleet.stop_patience, config.fleet.stop_min_improvement);

  MetricsFiles files(dir);
  int64_t evaluated = 0;
  int64_t recorded_steps = 0;
  auto record = [&](double loss, int64_t steps_done) {
    result.adapters.set_training(false);
    RoundMetrics m;
    m.round = ++evaluated;
    m.rounds = rounds;
    m.sampled = m.reported = 1;
    m.train_loss = loss;
    m.eval_perplexity = perplexity(*model, result.adapters, global_eval);
    m.validation_perplexity = perplexity(*model, result.adapters, validation);
    m.train_tokens = (steps_done - recorded_steps) * tokens_per_step;
    m.cumulative_train_tokens = steps_done * tokens_per_step;
    recorded_steps = steps_done;
    m.elapsed_seconds = seconds_since(start);
    result.adapters.set_training(true);
    files.write(m);
    result.rounds.push_back(m);
    return m.eval_perplexity;
  };
  // Train loss of the window since the last evaluation, from the step results.
  class LossWindow : public TrainStep {
   public:
    explicit LossWindow(TrainStep& inner) : inner_(inner) {}
    StepResult forward_backward(const data::Batch& batch, const StepContext& context) override {
      StepResult r = inner_.forward_backward(batch, context);
      sum_ += r.loss;
      ++n_;
      return r;
    }
    std::vector<at::Tensor> parameters() const override { return inner_.parameters(); }
    double take() {
      const double mean = n_ ? sum_ / static_cast<double>(n_) : 0.0;
      sum_ = 0;
      n_ = 0;
      return mean;
    }

   private:
    TrainStep& inner_;
    double sum_ = 0;
    int64_t n_ = 0;
  };
  LossWindow window(step);
  Trainer windowed(window, train);
  windowed.on_eval([&] { return record(window.take(), evaluated * steps_per_round + steps_per_round); });
  windowed.stop_when([&] {
    const double v = result.rounds.back().validation_perplexity;
    return v > 0 && convergence.update(v);
  });
  result.adapters.set_training(true);
  result.steps_taken = static_cast<int64_t>(windowed.run(stream).losses.size());
  if (convergence.converged()) {
    result.converged_round = evaluated;
    out << "  centralized converged after " << evaluated << " rounds' worth of steps: " << convergence.rule() << "\n";
  } else {
    record(window.take(), result.steps_taken);
  }
  result.adapters.set_training(false);
  lora::save_gguf(result.adapters, *model, dir + "/adapter.gguf",
                  {{"cleave.step", std::to_string(result.steps_taken)}});
  return result;
}

LocalOnlyResult run_local_only(std::shared_ptr<const LlamaModel> model, const FleetData& data,
                               const SimulationConfig& config, const std::string& dir, std::ostream& out) {
  const auto start = SteadyTime::now();
  LocalOnlyResult result;
  result.steps_per_site = config.fleet.rounds * config.train.steps;
  out << "local_only: " << data.sites.size() << " sites, each alone for "
      << (config.fleet.local_epochs > 0 ? "federation.rounds x its local steps"
                                        : std::to_string(result.steps_per_site) + " steps")
      << (config.fleet.stop_patience > 0 ? " at most (each stops on its own validation split)" : "") << "\n";
  const std::vector<data::Batch> global_eval = held_out_batches(data.global_eval, config.batches, config.eval_batches);
  std::ofstream csv(dir + "/sites.csv", std::ios::trunc);
  if (!csv) throw std::runtime_error(dir + "/sites.csv: cannot write");
  csv << "site,train_examples,steps,own_perplexity,global_perplexity\n";
  for (size_t i = 0; i < data.sites.size(); ++i) {
    const SiteData& site = data.sites[i];
    lora::AdapterSet adapters = lora::AdapterSet::create(*model, config.lora, config.seed);
    LocalTrainStep step(model, adapters, config.train.recompute, config.train.micro_batch);
    const int64_t local_steps = config.site_local_steps(data, i);
    TrainOptions train = config.train;
    train.steps = config.fleet.rounds * local_steps;
    train.log_every = 0;
    train.eval_every = 0;
    data::BatchOptions batches = config.batches;
    batches.seed = config.seed + 7919 * (i + 1);
    std::vector<data::Example> examples = data.gather(site.train);
    if (data::rows_per_epoch(examples, batches) == 0) {
      // As in the fleet, where its training fails every round: nothing to train on alone.
      out << "  local_only: site " << site.id << " has too few tokens for one row of seq_len + 1 = "
          << batches.seq_len + 1 << ": it cannot train alone (left out of the means)\n";
      csv << site.id << "," << site.train.size() << ",0,,\n";
      result.sites.push_back({site.id, static_cast<int64_t>(site.train.size()), 0, 0.0, 0.0});
      continue;
    }
    data::BatchStream stream(std::move(examples), batches);
    const std::vector<data::Batch> own_validation =
        held_out_batches(data.gather(site.validation), config.batches, config.fleet.client_eval_batches);
    // A site alone stops as the fleet would, on what it can see: its own validation split.
    const bool stops = config.fleet.stop_patience > 0 && !own_validation.empty();
    if (stops) train.eval_every = local_steps;
    Trainer trainer(step, train);
    ConvergenceCheck convergence(config.fleet.stop_patience, config.fleet.stop_min_improvement);
    double last_validation = 0;
    if (stops) {
      trainer.on_eval([&] {
        adapters.set_training(false);
        last_validation = perplexity(*model, adapters, own_validation);
        adapters.set_training(true);
        return last_validation;
      });
      trainer.stop_when([&] { return convergence.update(last_validation); });
    }
    adapters.set_training(true);
    const TrainReport report = trainer.run(stream);
    adapters.set_training(false);
    LocalOnlySite row;
    row.id = site.id;
    row.train_examples = static_cast<int64_t>(site.train.size());
    row.steps = static_cast<int64_t>(report.losses.size());
    lora::save_gguf(adapters, *model, dir + "/" + site.id + ".gguf", {{"cleave.step", std::to_string(row.steps)}});
    row.own_perplexity = perplexity(
        *model, adapters, held_out_batches(data.gather(site.eval), config.batches, config.fleet.client_eval_batches));
    row.global_perplexity = perplexity(*model, adapters, global_eval);
    csv << row.id << "," << row.train_examples << "," << row.steps << "," << row.own_perplexity << ","
        << row.global_perplexity << "\n";
    csv.flush();
    result.sites.push_back(row);
  }
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace cleave::simulate
