#include "aggregator/aggregator_options.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "util/lr_schedule.h"

namespace cleave::aggregator {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("aggregator." + message);
}

}  // namespace

OnDeadline parse_on_deadline(const std::string& name) {
  if (name == "extend") return OnDeadline::extend;
  if (name == "fail") return OnDeadline::fail;
  throw std::invalid_argument("aggregator.on_deadline '" + name +
                              "' is unknown: expected extend (wait up to max_extensions more deadlines) "
                              "or fail (stop the run)");
}

const char* on_deadline_name(OnDeadline value) { return value == OnDeadline::extend ? "extend" : "fail"; }

double AggregatorOptions::client_lr_at(int64_t round) const {
  // No warmup: the cosine runs from client_lr at round 0 to the floor at the last round.
  return warmup_cosine_lr(std::max<int64_t>(round, 0), rounds - 1, 0, client_lr, client_lr_min_ratio);
}

void AggregatorOptions::validate() const {
  require(rounds > 0, "rounds must be > 0, got " + std::to_string(rounds));
  require(rounds <= UINT32_MAX / 2, "rounds is too large");
  require(clients_per_round >= 0, "clients_per_round must be >= 0 (0: use fraction_per_round)");
  require(std::isfinite(fraction_per_round) && fraction_per_round > 0 && fraction_per_round <= 1,
          "fraction_per_round must be in (0, 1], got " + std::to_string(fraction_per_round));
  require(min_clients >= 1, "min_clients must be >= 1, got " + std::to_string(min_clients));
  require(clients_per_round == 0 || clients_per_round >= min_clients,
          "clients_per_round (" + std::to_string(clients_per_round) + ") must be >= min_clients (" +
              std::to_string(min_clients) + "): a round could never close");
  require(min_registered >= 0, "min_registered must be >= 0");
  require(max_registered >= registrations_to_start(),
          "max_registered must be >= the registrations awaited before round 0");
  require(round_deadline_ms > 0, "round_deadline_ms must be > 0");
  require(max_extensions >= 0, "max_extensions must be >= 0");
  require(std::isfinite(client_lr) && client_lr >= 0, "client_lr must be finite and >= 0 (0: the site's own)");
  require(std::isfinite(client_lr_min_ratio) && client_lr_min_ratio > 0 && client_lr_min_ratio <= 1,
          "client_lr_min_ratio must be in (0, 1] (1: no decay across rounds; 0 would send 0, which means the "
          "site's own rate), got " +
              std::to_string(client_lr_min_ratio));
  require(client_lr_min_ratio == 1 || client_lr > 0,
          "client_lr_min_ratio < 1 decays client_lr across the rounds: set client_lr (> 0), the rate of round 0");
  require(sampling == ClientSampling::random || !dp.enabled,
          "sampling: passes cannot be combined with dp: client-level DP samples sites by Poisson, which is what its "
          "accountant assumes (set sampling: random or turn dp off)");
  require(poll_interval_ms > 0 && poll_interval_ms <= 600000, "poll_interval_ms must be in (0, 600000]");
  require(keep_checkpoints >= 1, "keep_checkpoints must be >= 1 (the latest round is what a restart resumes from), got " +
                                     std::to_string(keep_checkpoints));
  require(split_timeout_ms > 0, "split_timeout_ms must be > 0");
  require(split_max_attempts >= 1, "split_max_attempts must be >= 1");
  require(split_backoff_ms >= 0, "split_backoff_ms must be >= 0");
  require(max_message_bytes >= 1024, "max_message_bytes is too small");
  for (const std::string& endpoint : split_servers) {
    require(!endpoint.empty(), "split_servers must not contain an empty endpoint");
  }
  strategy.validate();
  // DP and secure aggregation hand the strategy a (noisy) sum, never each update.
  const bool strategy_works_on_the_sum = !make_strategy(strategy)->needs_each_update();
  dp.validate();
  if (dp.enabled) {
    require(clients_per_round == 0,
            "dp: sites are Poisson-sampled at aggregator.fraction (what the privacy accountant assumes); set "
            "clients_per_round to 0");
    require(min_clients == 1,
            "dp: a round closes with whichever Poisson-sampled sites report (possibly none); min_clients must be 1");
    require(strategy_works_on_the_sum,
            "dp: strategy " + strategy.name +
                " needs individual updates; under DP the aggregator works on the noisy sum only: use fedavg, "
                "fedprox, fedavgm, fedadam or fedyogi");
  }
  secure_aggregation.validate(max_registered);
  require(!dp.enabled || !dp.distributed_noise || secure_aggregation.enabled,
          "dp.noise distributed: sites add the noise before masking, which only hides their updates under "
          "secure aggregation; enable aggregator.secure_aggregation or use dp.noise central");
  if (strategy.lora_aggregation == lora::LoraAggregation::product) {
    require(!dp.enabled && !secure_aggregation.enabled,
            "lora.aggregation product needs every site's own adapters to multiply out; under aggregator.dp or "
            "aggregator.secure_aggregation the aggregator sees only a (noisy) sum: use lora.aggregation ffa, which "
            "is exact under both");
  }
  if (secure_aggregation.enabled) {
    require(strategy_works_on_the_sum,
            "secure_aggregation: strategy " + strategy.name +
                " needs every site's update, and the aggregator sees only their sum: use fedavg, fedprox, fedavgm, "
                "fedadam or fedyogi");
    require(strategy.robust.clip_norm == 0,
            "secure_aggregation: the aggregator cannot clip updates it never sees; clip at the sites with "
            "aggregator.dp.clip_norm, or set strategy.robust.clip_norm to 0");
  }
}

int64_t AggregatorOptions::registrations_to_start() const {
  if (min_registered > 0) return min_registered;
  return std::max(min_clients, clients_per_round);
}

}  // namespace cleave::aggregator
