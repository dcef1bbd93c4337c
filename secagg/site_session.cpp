#include "secagg/site_session.h"

#include <algorithm>
#include <optional>

#include "secagg/key_agreement.h"
#include "secagg/key_signature.h"
#include "secagg/mask_prg.h"
#include "secagg/share_box.h"

namespace cleave::secagg {
namespace {

constexpr size_t kShareWireBytes = 4 + 8 * kShamirChunks;

std::string round_text(uint32_t round) { return "round " + std::to_string(round); }

}  // namespace

std::string pair_info(const char* purpose, uint32_t round, const std::string& a, const std::string& b) {
  const bool ordered = a < b;
  return std::string("cleave-secagg-") + purpose + "|" + std::to_string(round) + "|" + (ordered ? a : b) + "|" +
         (ordered ? b : a);
}

std::string box_associated_data(uint32_t round, const std::string& from, const std::string& to) {
  return "cleave-secagg-box|" + std::to_string(round) + "|" + from + "|" + to;
}

std::string signed_keys_message(uint32_t round, const std::string& client_id, const std::string& cipher_public,
                                const std::string& mask_public) {
  return "cleave-secagg-keys|" + std::to_string(round) + "|" + client_id + "|" + cipher_public + mask_public;
}

std::string signed_survivors_message(uint32_t round, const std::vector<std::string>& survivors) {
  // Each id length-prefixed, so no two lists read the same.
  std::string message = "cleave-secagg-survivors|" + std::to_string(round);
  for (const std::string& id : survivors) message += "|" + std::to_string(id.size()) + ":" + id;
  return message;
}

void check_round_params(const RoundParams& params, const std::string& client_id, const SiteRequirements& requirements) {
  const int64_t n = static_cast<int64_t>(params.sampled.size());
  if (!params.enabled) {
    if (requirements.required) {
      throw Refusal("the aggregator asks for an update without secure aggregation, which this site requires "
                    "(client.secure_aggregation.required)");
    }
    return;
  }
  if (!std::is_sorted(params.sampled.begin(), params.sampled.end()) ||
      std::adjacent_find(params.sampled.begin(), params.sampled.end()) != params.sampled.end()) {
    throw Refusal("the round's sampled sites are not sorted and distinct");
  }
  if (share_point(params, client_id) == 0) throw Refusal("this site is not among the round's sampled sites");
  if (n < requirements.min_sites) {
    throw Refusal("the round samples " + std::to_string(n) + " sites; this site needs at least " +
                  std::to_string(requirements.min_sites) + " to hide its update in their sum");
  }
  if (params.threshold < 2 || static_cast<int64_t>(params.threshold) > n ||
      static_cast<double>(params.threshold) <= requirements.min_threshold * static_cast<double>(n)) {
    throw Refusal("the round's threshold is " + std::to_string(params.threshold) + " of " + std::to_string(n) +
                  " sites; this site requires more than " + std::to_string(requirements.min_threshold) +
                  " of them (client.secure_aggregation.min_threshold)");
  }
  if (!fits_in_sum(n, params.uniform_weights ? 1 : params.weight_cap, params.clip_range, params.scale_bits)) {
    throw Refusal("the round's fixed-point encoding could overflow the sum of " + std::to_string(n) + " sites");
  }
  if (!fits_in_sum(n, params.uniform_weights ? 1 : params.weight_cap, kMetricRange, params.metric_scale_bits)) {
    throw Refusal("the round's fixed-point encoding of metrics could overflow the sum of " + std::to_string(n) +
                  " sites");
  }
  if (!std::is_sorted(params.metric_names.begin(), params.metric_names.end()) ||
      std::adjacent_find(params.metric_names.begin(), params.metric_names.end()) != params.metric_names.end()) {
    throw Refusal("the round's metric names are not sorted and distinct");
  }
  if (params.vector_length < 2 + 2 * static_cast<int64_t>(params.metric_names.size())) {
    throw Refusal("the round's vector length is " + std::to_string(params.vector_length));
  }
  if (!(params.noise_stddev >= 0)) throw Refusal("the round's noise_stddev is negative");
}

SiteSession::SiteSession(std::string client_id, uint32_t round, RoundParams params, const KeySigner& signer,
                         const KeyVerifier& verifier, const SiteRequirements& requirements)
    : client_id_(std::move(client_id)),
      round_(round),
      params_(std::move(params)),
      point_(share_point(params_, client_id_)),
      signer_(signer),
      verifier_(verifier) {
  check_round_params(params_, client_id_, requirements);
  if (!params_.enabled) throw Refusal("secure aggregation is not enabled for " + round_text(round_));
}

SiteSession::~SiteSession() {
  wipe(mask_private_);
  wipe(seed_);
  for (auto& [id, peer] : peers_) wipe(peer.box_key);
}

Keys SiteSession::advertise() {
  if (phase_ != 0) throw Refusal("keys for " + round_text(round_) + " were already sent");
  const X25519KeyPair cipher = x25519_generate();
  const X25519KeyPair mask = x25519_generate();
  X25519KeyPair cipher_pair = cipher;
  cipher_key_ = std::make_unique<X25519Private>(cipher_pair.private_key);
  wipe(cipher_pair.private_key);
  cipher_public_ = cipher.public_key;
  mask_private_ = mask.private_key;   // kept: it is shared out
  mask_key_ = std::make_unique<X25519Private>(mask_private_);
  mask_public_ = mask.public_key;
  Keys keys;
  keys.client_id = client_id_;
  keys.round = round_;
  keys.cipher_public = key_to_wire(cipher_public_);
  keys.mask_public = key_to_wire(mask_public_);
  keys.certificate_pem = signer_.certificate_pem();
  keys.signature = signer_.sign(signed_keys_message(round_, client_id_, keys.cipher_public, keys.mask_public));
  phase_ = 1;
  return keys;
}

Shares SiteSession::share(const PeerKeys& peer_keys) {
  if (phase_ != 1) throw Refusal("shares for " + round_text(round_) + " asked out of order");
  if (peer_keys.round != round_) throw Refusal("peer keys are for round " + std::to_string(peer_keys.round));
  bool self_seen = false;
  std::set<std::string> seen;
  std::vector<uint32_t> points;
  for (const Keys& peer : peer_keys.peers) {
    if (!seen.insert(peer.client_id).second) throw Refusal("peer keys list site " + peer.client_id + " twice");
    const uint32_t point = share_point(params_, peer.client_id);
    if (point == 0) throw Refusal("peer keys list site " + peer.client_id + ", which was not sampled");
    if (peer.round != round_) throw Refusal("the keys of " + peer.client_id + " are for another round");
    if (peer.client_id == client_id_) {
      if (peer.cipher_public != key_to_wire(cipher_public_) || peer.mask_public != key_to_wire(mask_public_)) {
        throw Refusal("the aggregator relayed other keys under this site's name: keys were swapped");
      }
      self_seen = true;
      points.push_back(point);
      continue;
    }
    if (std::optional<std::string> problem = verifier_.check(
            peer.client_id, peer.certificate_pem,
            signed_keys_message(round_, peer.client_id, peer.cipher_public, peer.mask_public), peer.signature)) {
      throw Refusal("the keys relayed for " + peer.client_id + " do not verify (" + *problem +
                    "): the aggregator may have swapped them");
    }
    PeerState state;
    state.certificate_pem = peer.certificate_pem;
    state.cipher_public = key_from_wire(peer.cipher_public, "cipher key of " + peer.client_id);
    state.mask_public = key_from_wire(peer.mask_public, "mask key of " + peer.client_id);
    peers_[peer.client_id] = std::move(state);
    points.push_back(point);
  }
  if (!self_seen) throw Refusal("the peer keys leave this site out");
  if (points.size() < params_.threshold) {
    throw Refusal(std::to_string(points.size()) + " sites sent keys, fewer than the threshold " +
                  std::to_string(params_.threshold));
  }
  seed_ = random_key();
  const std::vector<Share> seed_shares = shamir_split(seed_, params_.threshold, points);
  const std::vector<Share> key_shares = shamir_split(mask_private_, params_.threshold, points);
  Shares shares;
  shares.client_id = client_id_;
  shares.round = round_;
  size_t k = 0;
  for (const Keys& peer : peer_keys.peers) {
    const std::string seed_share = share_to_wire(seed_shares[k]);
    const std::string key_share = share_to_wire(key_shares[k]);
    ++k;
    if (peer.client_id == client_id_) {
      own_seed_share_ = seed_share;
      continue;
    }
    PeerState& state = peers_.at(peer.client_id);
    state.box_key = cipher_key_->agree(state.cipher_public, pair_info("box", round_, client_id_, peer.client_id));
    shares.boxes[peer.client_id] =
        seal_box(state.box_key, seed_share + key_share, box_associated_data(round_, client_id_, peer.client_id));
  }
  phase_ = 2;
  return shares;
}

void SiteSession::receive(const PeerShares& peer_shares) {
  if (phase_ != 2) throw Refusal("peer shares for " + round_text(round_) + " arrived out of order");
  if (peer_shares.round != round_) throw Refusal("peer shares are for round " + std::to_string(peer_shares.round));
  u2_ = {client_id_};
  for (const auto& [sender, box] : peer_shares.boxes) {
    auto it = peers_.find(sender);
    if (it == peers_.end()) throw Refusal("a share box came from " + sender + ", which sent no keys this round");
    std::optional<std::string> content =
        open_box(it->second.box_key, box, box_associated_data(round_, sender, client_id_));
    if (!content || content->size() != 2 * kShareWireBytes) {
      throw Refusal("the share box from " + sender + " does not open: altered, replayed or misaddressed");
    }
    const Share seed_share = share_from_wire(content->substr(0, kShareWireBytes));
    const Share key_share = share_from_wire(content->substr(kShareWireBytes));
    if (seed_share.x != point_ || key_share.x != point_) {
      throw Refusal("the shares from " + sender + " are not for this site's share point");
    }
    it->second.seed_share = content->substr(0, kShareWireBytes);
    it->second.key_share = content->substr(kShareWireBytes);
    u2_.push_back(sender);
  }
  std::sort(u2_.begin(), u2_.end());
  if (u2_.size() < params_.threshold) {
    throw Refusal(std::to_string(u2_.size()) + " sites shared their keys, fewer than the threshold " +
                  std::to_string(params_.threshold));
  }
  phase_ = 3;
}

MaskedInput SiteSession::mask(std::vector<uint64_t> encoded) {
  if (phase_ != 3) throw Refusal("masked input for " + round_text(round_) + " asked before the shares arrived");
  if (static_cast<int64_t>(encoded.size()) != params_.vector_length) {
    throw std::invalid_argument("the encoded update has " + std::to_string(encoded.size()) +
                                " words, the round expects " + std::to_string(params_.vector_length));
  }
  apply_mask(seed_, true, encoded.data(), encoded.size());
  for (const std::string& peer : u2_) {
    if (peer == client_id_) continue;
    Key32 pair_seed = mask_key_->agree(peers_.at(peer).mask_public, pair_info("mask", round_, client_id_, peer));
    // The smaller id adds, the larger subtracts: the pair's masks cancel in the sum.
    apply_mask(pair_seed, client_id_ < peer, encoded.data(), encoded.size());
    wipe(pair_seed);
  }
  phase_ = 4;
  MaskedInput input;
  input.client_id = client_id_;
  input.round = round_;
  input.masked = std::move(encoded);
  return input;
}

ConsistencySignature SiteSession::confirm(const ConsistencyCheck& check) {
  if (phase_ < 4) throw Refusal("the consistency check came before this site sent its masked input");
  if (check.round != round_) throw Refusal("the consistency check is for round " + std::to_string(check.round));
  if (phase_ > 4) {
    if (check.survivors != survivors_) {
      throw Refusal("the aggregator names other survivors than in the list this site already signed; refused");
    }
  } else {
    if (!std::is_sorted(check.survivors.begin(), check.survivors.end()) ||
        std::adjacent_find(check.survivors.begin(), check.survivors.end()) != check.survivors.end()) {
      throw Refusal("the consistency check's survivors are not sorted and distinct");
    }
    if (!std::binary_search(check.survivors.begin(), check.survivors.end(), client_id_)) {
      throw Refusal("the consistency check leaves this site out of the survivors");
    }
    for (const std::string& id : check.survivors) {
      if (!std::binary_search(u2_.begin(), u2_.end(), id)) {
        throw Refusal("the consistency check names " + id + ", which shared no keys with this site");
      }
    }
    if (check.survivors.size() < params_.threshold) {
      throw Refusal(std::to_string(check.survivors.size()) + " survivors, fewer than the threshold " +
                    std::to_string(params_.threshold));
    }
    survivors_ = check.survivors;
    survivors_signature_ = signer_.sign(signed_survivors_message(round_, survivors_));
    phase_ = 5;
  }
  return ConsistencySignature{client_id_, round_, survivors_signature_};
}

UnmaskShares SiteSession::unmask(const UnmaskRequest& request) {
  if (phase_ != 5) throw Refusal("unmasking asked before this site signed the round's survivors");
  if (request.round != round_) throw Refusal("the unmask request is for round " + std::to_string(request.round));
  if (request.survivors != survivors_) {
    throw Refusal("the unmask request names other survivors than the list this site signed; refused");
  }
  // At least t survivors signed the list this site signed: every honest site
  // that answers this round was told the same survivors.
  if (request.signatures.size() < params_.threshold) {
    throw Refusal(std::to_string(request.signatures.size()) + " survivors signed the list, fewer than the threshold " +
                  std::to_string(params_.threshold));
  }
  const std::string signed_list = signed_survivors_message(round_, survivors_);
  for (const auto& [id, signature] : request.signatures) {
    if (!std::binary_search(survivors_.begin(), survivors_.end(), id)) {
      throw Refusal("the unmask request carries a signature of " + id + ", which is not a survivor");
    }
    if (id == client_id_) {
      if (signature != survivors_signature_) throw Refusal("the unmask request carries another signature of this site");
      continue;
    }
    if (std::optional<std::string> problem =
            verifier_.check(id, peers_.at(id).certificate_pem, signed_list, signature)) {
      throw Refusal("the survivors' list signed by " + id + " is not the one this site signed (" + *problem +
                    "): the aggregator told the sites different survivors; refused");
    }
  }
  const std::set<std::string> survivors(request.survivors.begin(), request.survivors.end());
  const std::set<std::string> dropped(request.dropped.begin(), request.dropped.end());
  const std::set<std::string> in_u2(u2_.begin(), u2_.end());
  for (const std::string& id : survivors) {
    if (dropped.count(id)) {
      throw Refusal("the aggregator names " + id + " both survivor and dropped, asking for both of its secrets; refused");
    }
    if (!in_u2.count(id)) throw Refusal("the unmask request names " + id + ", which shared no keys with this site");
    if (revealed_key_.count(id)) {
      throw Refusal("the aggregator asks for the self-mask seed of " + id +
                    " after its mask key: with both it would see that site's update; refused");
    }
  }
  for (const std::string& id : dropped) {
    if (!in_u2.count(id)) throw Refusal("the unmask request names " + id + ", which shared no keys with this site");
    if (revealed_seed_.count(id)) {
      throw Refusal("the aggregator asks for the mask key of " + id +
                    " after its self-mask seed: with both it would see that site's update; refused");
    }
  }
  if (!survivors.count(client_id_)) throw Refusal("the unmask request leaves this site out of the survivors");
  if (survivors.size() < params_.threshold) {
    throw Refusal(std::to_string(survivors.size()) + " survivors, fewer than the threshold " +
                  std::to_string(params_.threshold));
  }
  if (survivors.size() + dropped.size() != in_u2.size()) {
    throw Refusal("the unmask request names " + std::to_string(survivors.size() + dropped.size()) +
                  " sites, this round had " + std::to_string(in_u2.size()) + " that shared keys");
  }
  UnmaskShares reply;
  reply.client_id = client_id_;
  reply.round = round_;
  for (const std::string& id : survivors) {
    reply.seed_shares[id] = id == client_id_ ? own_seed_share_ : peers_.at(id).seed_share;
    revealed_seed_.insert(id);
  }
  for (const std::string& id : dropped) {
    reply.key_shares[id] = peers_.at(id).key_share;
    revealed_key_.insert(id);
  }
  return reply;
}

}  // namespace cleave::secagg
