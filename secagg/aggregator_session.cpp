#include "secagg/aggregator_session.h"

#include <algorithm>

#include "secagg/key_agreement.h"
#include "secagg/key_signature.h"
#include "secagg/mask_prg.h"
#include "secagg/shamir.h"
#include "secagg/site_session.h"

namespace cleave::secagg {
namespace {

template <class Map>
std::vector<std::string> keys_of(const Map& map) {
  std::vector<std::string> out;
  out.reserve(map.size());
  for (const auto& entry : map) out.push_back(entry.first);
  return out;
}

// The site id of an entry of a list of ids or of a map keyed by them.
const std::string& id_of(const std::string& id) { return id; }
template <class V>
const std::string& id_of(const std::pair<const std::string, V>& entry) {
  return entry.first;
}

// The secret shared out by the sites in `shares` (share point checked against
// each responder's); throws std::invalid_argument when they do not agree.
Key32 reconstruct(const std::vector<Share>& shares, size_t threshold, const std::string& what) {
  const Key32 first = shamir_combine(shares, threshold);
  if (shares.size() > threshold) {
    // More shares than needed: a second subset must give the same secret.
    const std::vector<Share> last(shares.end() - static_cast<std::ptrdiff_t>(threshold), shares.end());
    if (shamir_combine(last, threshold) != first) {
      throw std::invalid_argument("the shares of " + what + " do not agree: a site sent a wrong share");
    }
  }
  return first;
}

}  // namespace

const char* session_state_name(SessionState state) {
  switch (state) {
    case SessionState::keys: return "keys";
    case SessionState::shares: return "shares";
    case SessionState::masked_input: return "masked_input";
    case SessionState::consistency: return "consistency";
    case SessionState::unmask: return "unmask";
    case SessionState::done: return "done";
    case SessionState::failed: return "failed";
  }
  return "unknown";
}

AggregatorSession::AggregatorSession(uint32_t round, RoundParams params, int64_t now, SessionTimes times,
                                     std::shared_ptr<const KeyVerifier> verifier)
    : round_(round), params_(std::move(params)), times_(times), verifier_(std::move(verifier)) {
  deadline_ms_ = now + times_.phase_timeout_ms;
  if (params_.sampled.size() < params_.threshold) {
    fail(std::to_string(params_.sampled.size()) + " sites sampled, fewer than the threshold " +
         std::to_string(params_.threshold));
  }
}

void AggregatorSession::fail(const std::string& reason) {
  state_ = SessionState::failed;
  failure_ = "secure aggregation of round " + std::to_string(round_) + " failed: " + reason;
}

std::string AggregatorSession::on_withdraw(const Withdraw& withdraw) {
  if (share_point(params_, withdraw.client_id) == 0) return "site " + withdraw.client_id + " was not sampled";
  if (state_ == SessionState::done || state_ == SessionState::failed) return "";
  withdrawn_.insert(withdraw.client_id);
  return "";
}

std::string AggregatorSession::on_keys(const Keys& keys) {
  if (state_ != SessionState::keys) return "keys arrived after the keys phase of round " + std::to_string(round_);
  if (withdrawn_.count(keys.client_id)) return "site " + keys.client_id + " withdrew from this round";
  if (share_point(params_, keys.client_id) == 0) return "site " + keys.client_id + " was not sampled";
  if (auto it = keys_.find(keys.client_id); it != keys_.end()) {
    // A resend (its reply was lost) is taken again; other keys are not.
    const bool resent = it->second.cipher_public == keys.cipher_public && it->second.mask_public == keys.mask_public;
    return resent ? "" : "site " + keys.client_id + " already sent other keys this round";
  }
  if (keys.cipher_public.size() != 32 || keys.mask_public.size() != 32) return "public keys must be 32 bytes";
  if (keys.certificate_pem.empty() || keys.certificate_pem.size() > 16384 || keys.signature.empty() ||
      keys.signature.size() > 1024) {
    return "the keys' certificate or signature is missing or too large";
  }
  if (verifier_) {
    if (std::optional<std::string> problem = verifier_->check(
            keys.client_id, keys.certificate_pem,
            signed_keys_message(round_, keys.client_id, keys.cipher_public, keys.mask_public), keys.signature)) {
      return "the keys of " + keys.client_id + " do not verify: " + *problem;
    }
  }
  keys_[keys.client_id] = keys;
  return "";
}

std::string AggregatorSession::on_shares(const Shares& shares) {
  if (state_ != SessionState::shares) return "shares arrived outside the shares phase of round " + std::to_string(round_);
  if (!keys_.count(shares.client_id)) return "site " + shares.client_id + " sent no keys this round";
  if (withdrawn_.count(shares.client_id)) return "site " + shares.client_id + " withdrew from this round";
  if (auto it = boxes_.find(shares.client_id); it != boxes_.end()) {
    return it->second == shares.boxes ? "" : "site " + shares.client_id + " already sent other shares this round";
  }
  if (shares.boxes.size() + 1 != keys_.size()) {
    return "site " + shares.client_id + " sent " + std::to_string(shares.boxes.size()) + " share boxes, expected " +
           std::to_string(keys_.size() - 1) + " (one per other site with keys)";
  }
  for (const auto& [recipient, box] : shares.boxes) {
    if (recipient == shares.client_id || !keys_.count(recipient)) {
      return "site " + shares.client_id + " sent a share box for " + recipient + ", which is not a peer this round";
    }
    if (box.empty() || box.size() > 1024) return "a share box must be 1..1024 bytes";
  }
  boxes_[shares.client_id] = shares.boxes;
  return "";
}

std::string AggregatorSession::on_masked_input(MaskedInput input) {
  if (state_ != SessionState::masked_input) {
    return "masked input arrived outside the masked-input phase of round " + std::to_string(round_);
  }
  if (!boxes_.count(input.client_id)) return "site " + input.client_id + " shared no keys this round";
  if (withdrawn_.count(input.client_id)) return "site " + input.client_id + " withdrew from this round";
  if (auto it = inputs_.find(input.client_id); it != inputs_.end()) {
    return it->second == input.masked ? "" : "site " + input.client_id + " already sent another masked input";
  }
  if (static_cast<int64_t>(input.masked.size()) != params_.vector_length) {
    return "masked input of " + input.client_id + " has " + std::to_string(input.masked.size()) +
           " words, the round expects " + std::to_string(params_.vector_length);
  }
  inputs_[input.client_id] = std::move(input.masked);
  return "";
}

std::string AggregatorSession::on_consistency_signature(const ConsistencySignature& signature) {
  if (state_ != SessionState::consistency) {
    return "a consistency signature arrived outside the consistency phase of round " + std::to_string(round_);
  }
  if (!inputs_.count(signature.client_id)) return "site " + signature.client_id + " is not a survivor this round";
  if (withdrawn_.count(signature.client_id)) return "site " + signature.client_id + " withdrew from this round";
  if (auto it = signatures_.find(signature.client_id); it != signatures_.end()) {
    return it->second == signature.signature ? "" : "site " + signature.client_id + " already sent another signature";
  }
  if (signature.signature.empty() || signature.signature.size() > 1024) return "a signature must be 1..1024 bytes";
  if (verifier_) {
    if (std::optional<std::string> problem =
            verifier_->check(signature.client_id, keys_.at(signature.client_id).certificate_pem,
                             signed_survivors_message(round_, survivors()), signature.signature)) {
      return "the consistency signature of " + signature.client_id + " does not verify: " + *problem;
    }
  }
  signatures_[signature.client_id] = signature.signature;
  return "";
}

std::string AggregatorSession::on_unmask_shares(const UnmaskShares& shares) {
  if (state_ != SessionState::unmask) return "unmask shares arrived outside the unmask phase of round " + std::to_string(round_);
  if (!signatures_.count(shares.client_id)) {
    return "site " + shares.client_id + " did not sign the survivors this round";
  }
  if (withdrawn_.count(shares.client_id)) return "site " + shares.client_id + " withdrew from this round";
  if (auto it = unmask_.find(shares.client_id); it != unmask_.end()) {
    const bool resent = it->second.seed_shares == shares.seed_shares && it->second.key_shares == shares.key_shares;
    return resent ? "" : "site " + shares.client_id + " already sent other unmask shares";
  }
  if (keys_of(shares.seed_shares) != survivors() || keys_of(shares.key_shares) != dropped()) {
    return "the unmask shares of " + shares.client_id + " do not cover exactly the survivors' seeds and the "
           "dropped sites' keys";
  }
  const uint32_t point = share_point(params_, shares.client_id);
  for (const auto* map : {&shares.seed_shares, &shares.key_shares}) {
    for (const auto& [id, wire] : *map) {
      try {
        if (share_from_wire(wire).x != point) return "a share from " + shares.client_id + " is for another share point";
      } catch (const std::invalid_argument& e) {
        return std::string("a malformed share from ") + shares.client_id + ": " + e.what();
      }
    }
  }
  unmask_[shares.client_id] = shares;
  return "";
}

PollAnswer AggregatorSession::poll(const Poll& poll) const {
  PollAnswer answer;
  auto abort = [&](const std::string& reason) {
    answer.abort = Abort{round_, reason};
    return answer;
  };
  if (poll.round != round_) return abort("round " + std::to_string(poll.round) + " is not the open round");
  if (state_ == SessionState::failed) return abort(failure_);
  const auto phase = static_cast<Phase>(poll.phase);
  switch (phase) {
    case Phase::keys:
      if (state_ == SessionState::keys) return answer;
      if (!keys_.count(poll.client_id)) return abort("this site's keys did not arrive in time");
      answer.peer_keys = PeerKeys{round_, {}};
      for (const auto& [id, keys] : keys_) answer.peer_keys->peers.push_back(keys);
      return answer;
    case Phase::shares:
      if (state_ == SessionState::keys || state_ == SessionState::shares) return answer;
      if (!boxes_.count(poll.client_id)) return abort("this site's shares did not arrive in time");
      answer.peer_shares = PeerShares{round_, {}};
      for (const auto& [sender, boxes] : boxes_) {
        if (sender != poll.client_id) answer.peer_shares->boxes[sender] = boxes.at(poll.client_id);
      }
      return answer;
    case Phase::consistency:
      if (state_ == SessionState::keys || state_ == SessionState::shares || state_ == SessionState::masked_input) {
        return answer;
      }
      if (!inputs_.count(poll.client_id)) return abort("this site's masked input did not arrive in time");
      answer.consistency = ConsistencyCheck{round_, survivors()};
      return answer;
    case Phase::unmask:
      if (state_ != SessionState::unmask && state_ != SessionState::done) return answer;
      if (!signatures_.count(poll.client_id)) return abort("this site's consistency signature did not arrive in time");
      answer.unmask = UnmaskRequest{round_, survivors(), dropped(), signatures_};
      return answer;
  }
  return abort("unknown phase " + std::to_string(poll.phase));
}

void AggregatorSession::enter(SessionState next, int64_t now) {
  state_ = next;
  // Masked inputs wait for training until the round's deadline, and at least a phase.
  deadline_ms_ = now + times_.phase_timeout_ms;
  if (next == SessionState::masked_input) deadline_ms_ = std::max(deadline_ms_, times_.input_deadline_ms);
}

void AggregatorSession::advance(int64_t now) {
  // The sites a phase still waits for: those of `from` that neither answered nor withdrew.
  // (`from` is the sampled ids or the map of the previous phase's answers,
  // read in place: advance runs on every request.)
  auto expected = [&](const auto& from, const auto& answered) {
    size_t count = answered.size();
    for (const auto& entry : from) {
      const std::string& id = id_of(entry);
      count += !answered.count(id) && !withdrawn_.count(id);
    }
    return count;
  };
  auto phase_over = [&](size_t have, size_t waited_for, const char* what, SessionState next) {
    if (have < waited_for && now < deadline_ms_) return false;
    if (have < params_.threshold) {
      fail(std::to_string(have) + " of " + std::to_string(waited_for) + " sites sent their " + what +
           ", fewer than the threshold " + std::to_string(params_.threshold));
      return false;
    }
    enter(next, now);
    return true;
  };
  if (state_ == SessionState::keys &&
      !phase_over(keys_.size(), expected(params_.sampled, keys_), "keys", SessionState::shares)) {
    return;
  }
  if (state_ == SessionState::shares &&
      !phase_over(boxes_.size(), expected(keys_, boxes_), "shares", SessionState::masked_input)) {
    return;
  }
  if (state_ == SessionState::masked_input &&
      !phase_over(inputs_.size(), expected(boxes_, inputs_), "masked inputs", SessionState::consistency)) {
    return;
  }
  if (state_ == SessionState::consistency &&
      !phase_over(signatures_.size(), expected(inputs_, signatures_), "consistency signatures",
                  SessionState::unmask)) {
    return;
  }
  if (state_ == SessionState::unmask) {
    if (unmask_.size() < expected(signatures_, unmask_) && now < deadline_ms_) return;
    if (unmask_.size() < params_.threshold) {
      fail(std::to_string(unmask_.size()) + " of " + std::to_string(signatures_.size()) +
           " survivors sent unmask shares, fewer than the threshold " + std::to_string(params_.threshold));
      return;
    }
    try {
      unmask_sum();
      state_ = SessionState::done;
    } catch (const std::exception& e) {
      fail(e.what());
    }
  }
}

void AggregatorSession::unmask_sum() {
  std::vector<uint64_t> sum(static_cast<size_t>(params_.vector_length), 0);
  for (const auto& [id, input] : inputs_) {
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += input[i];
  }
  auto shares_of = [&](const std::string& id, bool seed) {
    std::vector<Share> shares;
    for (const auto& [responder, reply] : unmask_) {
      shares.push_back(share_from_wire((seed ? reply.seed_shares : reply.key_shares).at(id)));
    }
    return shares;
  };
  for (const std::string& id : survivors()) {
    Key32 seed = reconstruct(shares_of(id, true), params_.threshold, "the self-mask seed of " + id);
    apply_mask(seed, false, sum.data(), sum.size());
    wipe(seed);
  }
  const std::vector<std::string> alive = survivors();
  for (const std::string& gone : dropped()) {
    Key32 mask_private = reconstruct(shares_of(gone, false), params_.threshold, "the mask key of " + gone);
    const X25519Private mask_key(mask_private);
    wipe(mask_private);
    if (key_to_wire(mask_key.public_key()) != keys_.at(gone).mask_public) {
      throw std::invalid_argument("the mask key rebuilt for " + gone + " does not match its public key: a wrong share");
    }
    for (const std::string& id : alive) {
      Key32 pair_seed =
          mask_key.agree(key_from_wire(keys_.at(id).mask_public, "mask key of " + id), pair_info("mask", round_, id, gone));
      // `id` added the pair's mask when its id is the smaller: take it back out.
      apply_mask(pair_seed, !(id < gone), sum.data(), sum.size());
      wipe(pair_seed);
    }
  }
  sum_ = std::move(sum);
}

std::vector<std::string> AggregatorSession::survivors() const { return keys_of(inputs_); }

std::vector<std::string> AggregatorSession::dropped() const {
  std::vector<std::string> out;
  for (const auto& [id, boxes] : boxes_) {
    if (!inputs_.count(id)) out.push_back(id);
  }
  return out;
}

std::map<std::string, std::string> AggregatorSession::dropouts() const {
  std::map<std::string, std::string> out;
  for (const std::string& id : params_.sampled) {
    if (!keys_.count(id)) {
      out[id] = "keys";
    } else if (!boxes_.count(id)) {
      out[id] = "shares";
    } else if (!inputs_.count(id)) {
      out[id] = "masked_input";
    }
  }
  return out;
}

}  // namespace cleave::secagg
