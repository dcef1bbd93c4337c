#include "aggregator/federated_client.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "aggregator/aggregation.h"
#include "aggregator/fault_point.h"
#include "aggregator/named_tensors_wire.h"
#include "lora/adapter_set.h"
#include "transport/request_retry.h"

namespace cleave::aggregator {

void FederatedClientOptions::validate() const {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument("client." + message);
  };
  require(!client_id.empty() && client_id.size() <= 128, "client_id must be 1..128 characters");
  require(request_timeout_ms > 0, "request_timeout_ms must be > 0");
  require(max_attempts >= 1, "max_attempts must be >= 1");
  require(backoff_ms >= 0 && max_backoff_ms >= backoff_ms, "backoff_ms must be in [0, max_backoff_ms]");
  require(max_wait_ms > 0, "max_wait_ms must be > 0");
  require(max_message_bytes >= 1024, "max_message_bytes is too small");
  train.validate();
  batches.validate();
}

LinkOptions FederatedClientOptions::link() const {
  LinkOptions link;
  link.request_timeout_ms = request_timeout_ms;
  link.max_attempts = max_attempts;
  link.backoff_ms = backoff_ms;
  link.max_backoff_ms = max_backoff_ms;
  link.max_message_bytes = max_message_bytes;
  link.stop = stop;
  return link;
}

uint64_t round_batch_seed(uint64_t seed, uint32_t round) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(round) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

FederatedClient::FederatedClient(std::string base_fingerprint, lora::AdapterSet& adapters, TrainStep& step,
                                 net::ClientChannel& aggregator, std::vector<data::Example> train,
                                 FederatedClientOptions options, Log log)
    : base_fingerprint_(std::move(base_fingerprint)),
      adapters_(adapters),
      step_(step),
      train_(std::move(train)),
      options_(std::move(options)),
      log_(std::move(log)),
      link_(aggregator, options_.client_id, options_.link(), log_) {
  options_.validate();
  if (train_.empty()) {
    throw std::invalid_argument("site " + options_.client_id + " has no training examples: check data.train");
  }
}

void FederatedClient::register_site() {
  link_.register_site(base_fingerprint_, static_cast<int64_t>(train_.size()), options_.blocks, adapters_.options());
}

RoundPoll FederatedClient::poll_once() {
  const net::Bytes reply =
      link_.exchange(pack_message(FederationMessage::round_request, RoundRequest{options_.client_id}),
                     {FederationMessage::round_assignment, FederationMessage::wait, FederationMessage::finished});
  RoundPoll poll;
  switch (peek_message(reply)) {
    case FederationMessage::error: {
      // E.g. an aggregator restarted without its checkpoint no longer knows
      // this site: register again, a bounded number of times.
      const auto error = unpack_message<FederationErrorReply>(reply, FederationMessage::error, options_.max_message_bytes);
      if (++refusals_ > options_.max_attempts) {
        throw FederationError("the aggregator keeps refusing site " + options_.client_id + ": " + error.message);
      }
      log_.warning("aggregator: " + error.message + "; registering again");
      register_site();
      poll.wait_ms = 0;
      return poll;
    }
    case FederationMessage::wait: {
      const auto wait = unpack_message<Wait>(reply, FederationMessage::wait, options_.max_message_bytes);
      poll.wait_ms = static_cast<uint32_t>(std::min<int64_t>(wait.retry_after_ms, options_.max_wait_ms));
      break;
    }
    case FederationMessage::finished: {
      poll.finished = unpack_message<Finished>(reply, FederationMessage::finished, options_.max_message_bytes);
      break;
    }
    default: {
      const auto assignment =
          unpack_message<RoundAssignment>(reply, FederationMessage::round_assignment, options_.max_message_bytes);
      if (declined_round_ == assignment.round) {
        // This site refused the round already; the aggregator goes on without it.
        poll.wait_ms = static_cast<uint32_t>(std::min<int64_t>(1000, options_.max_wait_ms));
        break;
      }
      metrics::CostMeter cost;
      {
        metrics::PhaseScope role(cost, metrics::Phase::other);   // training and codecs nest inside
        poll.trained = train_round(assignment);
      }
      auto tokens = poll.trained->metrics.find("train_tokens");
      if (tokens != poll.trained->metrics.end()) cost.add_tokens(static_cast<int64_t>(tokens->second));
      poll.trained->cost = cost.totals();
      break;
    }
  }
  refusals_ = 0;
  return poll;
}

int64_t FederatedClient::retry_delay_ms() const {
  if (failed_rounds_ == 0) return 0;
  net::RetryOptions retry;
  retry.backoff_ms = options_.backoff_ms;
  retry.max_backoff_ms = options_.max_backoff_ms;
  return net::backoff_after(retry, failed_rounds_);
}

SiteReport FederatedClient::run() {
  register_site();
  SiteReport report;
  while (true) {
    RoundPoll poll = poll_once();
    if (poll.trained) {
      report.rounds.push_back(std::move(*poll.trained));
      if (!net::wait_unless_stopped(retry_delay_ms(), options_.stop)) throw net::RequestStopped("stopped");
    } else if (poll.wait_ms) {
      if (!net::wait_unless_stopped(*poll.wait_ms, options_.stop)) throw net::RequestStopped("stopped");
    } else if (poll.finished) {
      const Finished& finished = *poll.finished;
      report.rounds_completed = finished.rounds_completed;
      report.failed = finished.failed;
      report.reason = finished.reason;
      log_(finished.failed ? LogLevel::error : LogLevel::info,
           finished.failed ? "the federation stopped: " + finished.reason
                           : "the federation finished after " + std::to_string(finished.rounds_completed) + " rounds");
      return report;
    }
  }
}

bool FederatedClient::train_locally(const RoundAssignment& assignment, const NamedTensors& global, SiteRound& result) {
  result.round = assignment.round;
  result.num_samples = static_cast<int64_t>(train_.size());
  adapters_.assign(global);

  TrainOptions train = options_.train;
  if (assignment.config.local_steps > 0) train.steps = assignment.config.local_steps;
  if (assignment.config.lr > 0) train.lr = assignment.config.lr;
  train.proximal_mu = assignment.config.proximal_mu;
  train.round = assignment.round;
  data::BatchOptions batches = options_.batches;
  batches.seed = round_batch_seed(options_.batches.seed, assignment.round);
  log_.info("round " + std::to_string(assignment.round) + ": training " + std::to_string(train.steps) + " local steps");

  try {
    const std::shared_ptr<void> slot = options_.training_slot ? options_.training_slot() : nullptr;
    if (eval_) result.metrics["eval_perplexity_global"] = eval_();
    data::BatchStream stream(train_, batches);
    Trainer trainer(step_, train);
    const TrainReport trained = trainer.run(stream);
    result.metrics["train_loss"] = trained.mean_loss();
    result.metrics["train_loss_last"] = trained.losses.back();
    result.metrics["train_seconds"] = trained.seconds;
    result.metrics["train_tokens"] = static_cast<double>(trained.tokens);
    if (eval_) result.metrics["eval_perplexity"] = eval_();
    result.trained = true;
  } catch (const net::RequestStopped&) {
    throw;   // a signal, not a failed round
  } catch (const std::exception& e) {
    result.error = e.what();
    ++failed_rounds_;
    log_.error("round " + std::to_string(assignment.round) + ": local training failed, sending no update: " + e.what() +
               " (" + std::to_string(failed_rounds_) + " in a row; backing off before asking again)");
    return false;
  }
  failed_rounds_ = 0;

  {
    at::NoGradGuard no_grad;
    const NamedTensors local = adapters_.to_named();
    for (const auto& [name, start] : global) result.delta[name] = local.at(name) - start;
  }
  if (assignment.config.clip_norm > 0) {
    // Client-level DP: this site's whole delta moves the federation's sum by
    // at most clip_norm (the aggregator clips again, and adds the noise).
    ClippedDelta clipped = clip_by_norm(result.delta, assignment.config.clip_norm);
    if (clipped.norm > assignment.config.clip_norm) {
      log_.debug("round " + std::to_string(assignment.round) + ": delta norm " + std::to_string(clipped.norm) +
                 " clipped to " + std::to_string(assignment.config.clip_norm) + " (dp)");
    }
    result.delta = std::move(clipped.delta);
  }
  return true;
}

SiteRound FederatedClient::train_round(const RoundAssignment& assignment) {
  // A test can hold the site here: sampled in an open round, not reporting.
  fault_point("site.round_assigned");
  NamedTensors global;
  try {
    global = decode_tensors(assignment.adapters, adapters_.to_named(), "the global adapters from the aggregator");
  } catch (const wire::WireError& e) {
    // A configuration mismatch (lora, cut_layer, base) that no retry fixes.
    throw FederationError(std::string("site ") + options_.client_id + " cannot train round " +
                          std::to_string(assignment.round) + ": " + e.what());
  }
  if (assignment.secure.enabled || options_.secure.required) return train_secure_round(assignment, global);
  SiteRound result;
  if (!train_locally(assignment, global, result)) return result;
  Update update;
  update.client_id = options_.client_id;
  update.round = assignment.round;
  update.num_samples = result.num_samples;
  update.metrics = result.metrics;
  try {
    update.delta = encode_tensors(result.delta);
  } catch (const wire::WireError& e) {
    result.error = std::string("the delta is not finite: ") + e.what();
    log_.error("round " + std::to_string(assignment.round) + ": " + result.error + "; sending no update");
    return result;
  }
  const net::Bytes reply = link_.exchange(pack_message(FederationMessage::update, update), {FederationMessage::update_ack});
  if (peek_message(reply) == FederationMessage::error) {
    result.error = unpack_message<FederationErrorReply>(reply, FederationMessage::error, options_.max_message_bytes).message;
  } else {
    const auto ack = unpack_message<UpdateAck>(reply, FederationMessage::update_ack, options_.max_message_bytes);
    result.accepted = ack.accepted;
    result.error = ack.reason;
  }
  log_(result.accepted ? LogLevel::info : LogLevel::warning,
       "round " + std::to_string(assignment.round) + ": update " +
           (result.accepted ? std::string("accepted") : "rejected: " + result.error));
  return result;
}

}  // namespace cleave::aggregator
