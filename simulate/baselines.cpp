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
  for (const LocalOnlySite& site : sites) sum += site.global_perplexity;
  return sites.empty() ? 0.0 : sum / static_cast<double>(sites.size());
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
  const int64_t steps_per_round = config.train.steps * sites_per_round(config, data);
  CentralizedResult result;
  result.steps = rounds * steps_per_round;
  out << "centralized: " << data.train_count() << " examples in one place, " << result.steps << " steps ("
      << rounds << " x " << steps_per_round << ", the fleet's total)\n";

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

  MetricsFiles files(dir);
  int64_t evaluated = 0;
  auto record = [&](double loss) {
    result.adapters.set_training(false);
    RoundMetrics m;
    m.round = ++evaluated;
    m.rounds = rounds;
    m.sampled = m.reported = 1;
    m.train_loss = loss;
    m.eval_perplexity = perplexity(*model, result.adapters, global_eval);
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
  windowed.on_eval([&] { return record(window.take()); });
  result.adapters.set_training(true);
  windowed.run(stream);
  record(window.take());
  result.adapters.set_training(false);
  lora::save_gguf(result.adapters, *model, dir + "/adapter.gguf", {{"cleave.step", std::to_string(result.steps)}});
  return result;
}

LocalOnlyResult run_local_only(std::shared_ptr<const LlamaModel> model, const FleetData& data,
                               const SimulationConfig& config, const std::string& dir, std::ostream& out) {
  const auto start = SteadyTime::now();
  LocalOnlyResult result;
  result.steps_per_site = config.fleet.rounds * config.train.steps;
  out << "local_only: " << data.sites.size() << " sites, each alone for " << result.steps_per_site << " steps\n";
  const std::vector<data::Batch> global_eval = held_out_batches(data.global_eval, config.batches, config.eval_batches);
  std::ofstream csv(dir + "/sites.csv", std::ios::trunc);
  if (!csv) throw std::runtime_error(dir + "/sites.csv: cannot write");
  csv << "site,train_examples,steps,own_perplexity,global_perplexity\n";
  for (size_t i = 0; i < data.sites.size(); ++i) {
    const SiteData& site = data.sites[i];
    lora::AdapterSet adapters = lora::AdapterSet::create(*model, config.lora, config.seed);
    LocalTrainStep step(model, adapters, config.train.recompute, config.train.micro_batch);
    TrainOptions train = config.train;
    train.steps = result.steps_per_site;
    train.log_every = 0;
    train.eval_every = 0;
    data::BatchOptions batches = config.batches;
    batches.seed = config.seed + 7919 * (i + 1);
    data::BatchStream stream(data.gather(site.train), batches);
    adapters.set_training(true);
    Trainer(step, train).run(stream);
    adapters.set_training(false);
    LocalOnlySite row;
    row.id = site.id;
    row.train_examples = static_cast<int64_t>(site.train.size());
    row.own_perplexity = perplexity(
        *model, adapters, held_out_batches(data.gather(site.eval), config.batches, config.fleet.client_eval_batches));
    row.global_perplexity = perplexity(*model, adapters, global_eval);
    csv << row.id << "," << row.train_examples << "," << result.steps_per_site << "," << row.own_perplexity << ","
        << row.global_perplexity << "\n";
    csv.flush();
    result.sites.push_back(row);
  }
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace cleave::simulate
