// FederatedClient's rounds under secure aggregation (secagg/secagg_messages.h
// for the phases).
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>

#include "aggregator/aggregation.h"
#include "aggregator/federated_client.h"
#include "aggregator/secure_encoding.h"
#include "secagg/site_session.h"
#include "transport/request_retry.h"
#include "util/clock.h"

namespace cleave::aggregator {
namespace {

// The aggregator aborted the round: there is nothing left to withdraw from.
class RoundEnded : public secagg::Refusal {
 public:
  using secagg::Refusal::Refusal;
};

}  // namespace

net::Bytes FederatedClient::secure_poll(uint32_t round, uint8_t phase, FederationMessage expected) {
  const secagg::Poll poll{options_.client_id, round, phase};
  // Waiting for the other sites: the aggregator's retry_after, grown by half
  // after every Wait up to 25 ms (or retry_after if longer), so a hundred
  // sites waiting out a long phase do not flood the aggregator with polls.
  double backoff_ms = 0;
  while (true) {
    const net::Bytes reply = link_.exchange(pack_message(FederationMessage::secagg_poll, poll),
                                            {expected, FederationMessage::wait, FederationMessage::secagg_abort});
    switch (peek_message(reply)) {
      case FederationMessage::wait: {
        const auto wait = unpack_message<Wait>(reply, FederationMessage::wait, options_.max_message_bytes);
        const double retry = static_cast<double>(wait.retry_after_ms);
        backoff_ms = backoff_ms == 0 ? retry : std::min(std::max(retry, 25.0), backoff_ms * 1.5);
        const int64_t pause = std::min<int64_t>(static_cast<int64_t>(backoff_ms), options_.max_wait_ms);
        if (!net::wait_unless_stopped(pause, options_.stop)) throw net::RequestStopped("stopped");
        continue;
      }
      case FederationMessage::secagg_abort:
        throw RoundEnded("the aggregator ended the round: " +
                              unpack_message<secagg::Abort>(reply, FederationMessage::secagg_abort,
                                                            options_.max_message_bytes)
                                  .reason);
      case FederationMessage::error:
        throw secagg::Refusal("the aggregator: " + unpack_message<FederationErrorReply>(
                                                       reply, FederationMessage::error, options_.max_message_bytes)
                                                       .message);
      default:
        return reply;
    }
  }
}

void FederatedClient::secure_send(FederationMessage type, const net::Bytes& frame, uint32_t round) {
  const net::Bytes reply = link_.exchange(frame, {FederationMessage::update_ack});
  if (peek_message(reply) == FederationMessage::error) {
    throw secagg::Refusal("the aggregator refused " + std::string(message_name(type)) + ": " +
                          unpack_message<FederationErrorReply>(reply, FederationMessage::error,
                                                               options_.max_message_bytes)
                              .message);
  }
  const auto ack = unpack_message<UpdateAck>(reply, FederationMessage::update_ack, options_.max_message_bytes);
  if (!ack.accepted || ack.round != round) {
    throw secagg::Refusal("the aggregator refused " + std::string(message_name(type)) + ": " + ack.reason);
  }
}

void FederatedClient::withdraw(uint32_t round, const std::string& reason) {
  try {
    const net::Bytes reply = link_.exchange(
        pack_message(FederationMessage::secagg_withdraw, secagg::Withdraw{options_.client_id, round, reason}),
        {FederationMessage::update_ack});
    (void)reply;
  } catch (const FederationError& e) {
    // Best effort: without it the aggregator waits out the phase's deadline.
    log_.warning("round " + std::to_string(round) + ": could not tell the aggregator this site withdraws: " + e.what());
  }
}

SiteRound FederatedClient::train_secure_round(const RoundAssignment& assignment, const NamedTensors& global) {
  const uint32_t round = assignment.round;
  const size_t max_bytes = options_.max_message_bytes;
  SiteRound result;
  result.round = round;
  result.num_samples = static_cast<int64_t>(train_.size());
  result.secure = true;
  const std::string prefix = "round " + std::to_string(round) + ": secure aggregation: ";
  bool keys_sent = false;
  try {
    // A round this site will not take part in (it asks for less than the
    // site requires, or the site cannot sign) is declined once, not retried
    // on every poll.
    declined_round_ = round;
    secagg::check_round_params(assignment.secure, options_.client_id, options_.secure);
    if (!options_.signer || !options_.verifier) {
      throw secagg::Refusal("this site has no federation certificate to sign its keys with (secure aggregation "
                            "needs the site's tls: cert, key and ca)");
    }
    secagg::SiteSession session(options_.client_id, round, assignment.secure, *options_.signer, *options_.verifier,
                                options_.secure);
    declined_round_.reset();
    // Where the round's time goes: the protocol's own work, waiting for the
    // other sites at each phase, and training.
    const SteadyClock clock;
    const int64_t round_start = clock.now_ms();
    int64_t waited = 0, trained = 0;   // ms
    auto phase_input = [&](secagg::Phase phase, FederationMessage expected) {
      const int64_t start = clock.now_ms();
      net::Bytes reply = secure_poll(round, uint8_t(phase), expected);
      waited += clock.now_ms() - start;
      return reply;
    };
    // Phase 0 and 1, before training: keys, then shares (which wait for every
    // site's keys; the shares of the others are only needed to mask).
    secure_send(FederationMessage::secagg_keys, pack_message(FederationMessage::secagg_keys, session.advertise()),
                round);
    keys_sent = true;
    const auto peer_keys = unpack_message<secagg::PeerKeys>(
        phase_input(secagg::Phase::keys, FederationMessage::secagg_peer_keys),
        FederationMessage::secagg_peer_keys, max_bytes);
    secure_send(FederationMessage::secagg_shares,
                pack_message(FederationMessage::secagg_shares, session.share(peer_keys)), round);

    // Train while the other sites share theirs; a failure from here on is a
    // dropout the aggregator recovers from with the survivors' shares.
    const int64_t train_start = clock.now_ms();
    if (!train_locally(assignment, global, result)) {
      withdraw(round, "local training failed: " + result.error);
      return result;
    }
    trained = clock.now_ms() - train_start;

    // Phase 2: the shares the others sent this site, then the masked input.
    session.receive(unpack_message<secagg::PeerShares>(
        phase_input(secagg::Phase::shares, FederationMessage::secagg_peer_shares),
        FederationMessage::secagg_peer_shares, max_bytes));
    log_.info(prefix + std::to_string(session.u2().size()) + " sites share masks (threshold " +
              std::to_string(assignment.secure.threshold) + ")");
    at::NoGradGuard no_grad;
    // The checks the aggregator can no longer make on a masked update (shapes, NaN).
    ClientUpdate update;
    update.client_id = options_.client_id;
    update.delta = result.delta;
    update.num_samples = result.num_samples;
    if (std::optional<std::string> problem = validate_update(update, global)) {
      result.error = *problem;
      log_.error(prefix + result.error + "; sending no masked input");
      withdraw(round, result.error);
      return result;
    }
    if (assignment.secure.noise_stddev > 0) {
      // Distributed DP: this site's share of the round's Gaussian noise.
      at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(std::random_device{}() |
                                                                         (uint64_t(std::random_device{}()) << 32));
      for (auto& [name, delta] : result.delta) {
        delta = delta + at::normal(0.0, assignment.secure.noise_stddev, delta.sizes(), generator,
                                   at::TensorOptions().dtype(delta.scalar_type()));
      }
    }
    // The metrics go masked too: the aggregator learns only their mean.
    EncodedUpdate encoded = encode_update(result.delta, result.num_samples, result.metrics, assignment.secure);
    if (encoded.clipped > 0) {
      log_.warning(prefix + std::to_string(encoded.clipped) + " coordinates clipped to +/-" +
                   std::to_string(assignment.secure.clip_range) + " for the fixed-point encoding");
    }
    secure_send(FederationMessage::secagg_masked_input,
                pack_message(FederationMessage::secagg_masked_input,
                             session.mask(std::move(encoded.words))),
                round);
    result.accepted = true;

    // Phase 3: sign the survivors, so no other site is told another list.
    const auto check = unpack_message<secagg::ConsistencyCheck>(
        phase_input(secagg::Phase::consistency, FederationMessage::secagg_consistency_check),
        FederationMessage::secagg_consistency_check, max_bytes);
    secure_send(FederationMessage::secagg_consistency_signature,
                pack_message(FederationMessage::secagg_consistency_signature, session.confirm(check)), round);

    // Phase 4: the shares that remove the masks.
    const auto request = unpack_message<secagg::UnmaskRequest>(
        phase_input(secagg::Phase::unmask, FederationMessage::secagg_unmask_request),
        FederationMessage::secagg_unmask_request, max_bytes);
    secure_send(FederationMessage::secagg_unmask_shares,
                pack_message(FederationMessage::secagg_unmask_shares, session.unmask(request)), round);
    const int64_t total = clock.now_ms() - round_start;
    char timing[160];
    std::snprintf(timing, sizeof timing, "; %.3f s in all: protocol %.3f s, waiting for the other sites %.3f s, "
                  "training %.3f s", total / 1e3, (total - waited - trained) / 1e3, waited / 1e3, trained / 1e3);
    log_.info(prefix + "masked input in the sum of " + std::to_string(request.survivors.size()) + " sites" +
              (request.dropped.empty() ? std::string() : " (" + std::to_string(request.dropped.size()) + " dropped)") +
              timing);
  } catch (const RoundEnded& e) {
    result.error = e.what();
    log_.warning(prefix + e.what());
  } catch (const secagg::Refusal& e) {
    result.error = e.what();
    log_.warning(prefix + e.what());
    // Refused after its keys went out (say a peer's keys do not verify):
    // tell the aggregator, so the round need not wait for this site.
    if (keys_sent) withdraw(round, e.what());
  }
  return result;
}

}  // namespace cleave::aggregator
