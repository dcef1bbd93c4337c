#include "simulate/site_round.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>

#include "client/train_step.h"
#include "lora/adapter_set.h"
#include "model/llama_model.h"
#include "split/split_client.h"

namespace cleave::simulate {
namespace {

// Keeps the census honest on every exit path.
class CensusEntry {
 public:
  explicit CensusEntry(SiteCensus* census) : census_(census) {
    if (census_) census_->enter();
  }
  ~CensusEntry() {
    if (census_) census_->leave();
  }
  CensusEntry(const CensusEntry&) = delete;
  CensusEntry& operator=(const CensusEntry&) = delete;

 private:
  SiteCensus* census_;
};

}  // namespace

void SiteCensus::enter() {
  ++created_;
  const int64_t now = ++live_;
  int64_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
}

void SiteCensus::leave() { --live_; }

std::shared_ptr<void> TrainingSlots::acquire() {
  std::unique_lock<std::mutex> lock(mutex_);
  freed_.wait(lock, [this] { return free_ > 0; });
  --free_;
  return std::shared_ptr<void>(this, [](TrainingSlots* slots) {
    {
      std::lock_guard<std::mutex> released(slots->mutex_);
      ++slots->free_;
    }
    slots->freed_.notify_one();
  });
}

aggregator::FederatedClientOptions site_options(const SiteContext& context, const SiteData& site, size_t index) {
  const SimulationConfig& config = *context.config;
  aggregator::FederatedClientOptions options;
  options.client_id = site.id;
  options.blocks = config.fleet.site_blocks(context.model->n_layers());
  options.train = config.train;
  options.train.steps = context.local_steps.at(index);
  options.train.log_every = 0;
  options.batches = config.batches;
  options.batches.seed = aggregator::round_batch_seed(config.seed, static_cast<uint32_t>(index) + 0x5177u);
  // In one process nothing is lost in transit; a long timeout only covers the
  // last update of a round, whose acknowledgement waits for the aggregation.
  options.request_timeout_ms = 600000;
  options.max_attempts = 2;
  options.backoff_ms = 10;
  if (context.signer && config.fleet.secure_aggregation.enabled) {
    options.signer = context.signer(site.id);
    options.verifier = context.verifier;
  }
  options.training_slot = context.training_slot;
  return options;
}

aggregator::SiteRound run_site_round(const SiteContext& context, size_t index, net::ClientChannel& aggregator_channel,
                                     net::ClientChannel* split_channel) {
  const SiteData& site = context.data->sites.at(index);
  const SimulationConfig& config = *context.config;
  const bool split = config.fleet.mode == FleetMode::split;
  CensusEntry entry(context.census);

  const split::SiteBlocks blocks = config.fleet.site_blocks(context.model->n_layers());
  // Initial values do not matter: the round's global adapters overwrite them.
  lora::AdapterSet adapters = lora::AdapterSet::create(*context.model, config.site_lora(index), config.seed,
                                                       [blocks](int64_t layer) { return blocks.contains(layer); });
  std::unique_ptr<TrainStep> step;
  if (split) {
    split::SplitClientOptions split_options;
    split_options.client_id = site.id;
    split_options.mode = config.fleet.split_mode;
    split_options.cut_layer = blocks.cut_layer;
    split_options.top_cut = blocks.top_cut;
    split_options.protection = config.fleet.protection;
    split_options.activation_codec = config.fleet.activation_codec;
    split_options.gradient_codec = config.fleet.gradient_codec;
    split_options.stochastic_rounding = config.fleet.stochastic_rounding;
    split_options.protection.noise_seed =
        aggregator::round_batch_seed(config.seed ^ (0x6e6f697365ull + index),
                                     static_cast<uint32_t>(context.census ? context.census->created() : 0)) |
        1u;   // never 0 (0 asks for OS entropy)
    split_options.timeout_ms = 600000;
    split_options.max_attempts = 2;
    split_options.recompute = config.train.recompute;
    step = std::make_unique<split::SplitTrainStep>(context.model, adapters, *split_channel, split_options);
  } else {
    step = std::make_unique<LocalTrainStep>(context.model, adapters, config.train.recompute,
                                            config.train.micro_batch);
  }
  aggregator::FederatedClient client(context.base_fingerprint, adapters, *step, aggregator_channel,
                                     context.data->gather(site.train), site_options(context, site, index),
                                     context.log);
  adapters.set_training(true);
  aggregator::RoundPoll poll = client.poll_once();
  if (poll.trained) return std::move(*poll.trained);
  aggregator::SiteRound missed;
  missed.error = poll.finished ? "the run was over" : "the site was not assigned a round";
  return missed;
}

std::vector<aggregator::SiteRound> run_sites(const SiteContext& context, const std::vector<size_t>& indices,
                                             int64_t workers, const std::function<SiteChannels(size_t)>& connect) {
  std::vector<aggregator::SiteRound> results(indices.size());
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  auto work = [&] {
    try {
      for (size_t k = next++; k < indices.size(); k = next++) {
        try {
          SiteChannels channels = connect(indices[k]);
          results[k] = run_site_round(context, indices[k], *channels.aggregator, channels.split.get());
        } catch (const aggregator::FederationError& e) {
          // The aggregator refused or stayed silent: data for the round, not a crash.
          results[k].error = e.what();
          context.log.warning("site " + context.data->sites[indices[k]].id + ": " + e.what());
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  // Secure aggregation's phases wait for every sampled site: each runs on its
  // own thread, and context.training_slot bounds how many train at once.
  const bool concurrent = context.config->fleet.secure_aggregation.enabled;
  const size_t threads =
      concurrent ? indices.size()
                 : std::min<size_t>(static_cast<size_t>(std::max<int64_t>(1, workers)), indices.size());
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  if (threads > 0) work();
  for (std::thread& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
  return results;
}

std::string encode_reports(const std::vector<aggregator::SiteRound>& rounds) {
  std::ostringstream out;
  out << std::hexfloat << rounds.size() << '\n';
  for (const aggregator::SiteRound& r : rounds) {
    out << r.round << ' ' << r.num_samples << ' ' << r.trained << ' ' << r.accepted << ' ' << r.cost.tokens << ' '
        << r.cost.metered_segments << ' ' << r.cost.unmetered_segments << ' ' << r.cost.shared_segments;
    for (const metrics::PhaseCost& phase : r.cost.phases) {
      out << ' ' << phase.wall_seconds << ' ' << phase.cpu_seconds << ' ' << phase.joules;
    }
    out << ' ' << r.error.size() << ' ' << r.error << '\n';
  }
  return out.str();
}

std::vector<aggregator::SiteRound> decode_reports(const std::string& text) {
  std::istringstream in(text);
  size_t count = 0;
  in >> count;
  std::vector<aggregator::SiteRound> rounds(count);
  for (aggregator::SiteRound& r : rounds) {
    in >> r.round >> r.num_samples >> r.trained >> r.accepted >> r.cost.tokens >> r.cost.metered_segments >>
        r.cost.unmetered_segments >> r.cost.shared_segments;
    for (metrics::PhaseCost& phase : r.cost.phases) {
      std::string wall, cpu, joules;   // hexfloat is read back through strtod
      in >> wall >> cpu >> joules;
      phase.wall_seconds = std::strtod(wall.c_str(), nullptr);
      phase.cpu_seconds = std::strtod(cpu.c_str(), nullptr);
      phase.joules = std::strtod(joules.c_str(), nullptr);
    }
    size_t length = 0;
    in >> length;
    in.get();   // the space before the text
    r.error.resize(length);
    in.read(r.error.data(), static_cast<std::streamsize>(length));
  }
  if (!in) throw std::runtime_error("a rank's site reports could not be read back");
  return rounds;
}

}  // namespace cleave::simulate
