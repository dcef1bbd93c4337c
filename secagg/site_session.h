// One site's side of one secure aggregation round (secagg/secagg_messages.h):
// its key pairs, the shares its peers gave it, and what it has already
// revealed. Each step checks what the aggregator relayed and throws Refusal
// rather than go on with keys it cannot verify or a request that would
// reveal both secrets of one peer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "secagg/bytes.h"
#include "secagg/key_agreement.h"
#include "secagg/round_params.h"
#include "secagg/secagg_messages.h"
#include "secagg/shamir.h"

namespace cleave::secagg {

class KeySigner;
class KeyVerifier;

// The site will not take part: the message says why (and is logged).
class Refusal : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The least a site accepts (config `client.secure_aggregation`).
struct SiteRequirements {
  bool required = false;              // refuse rounds without secure aggregation
  double min_threshold = 0.5;         // refuse t <= min_threshold * sampled sites
  int64_t min_sites = 3;              // refuse rounds that sample fewer sites
};

// Throws Refusal when `params` ask for less than `requirements` (or are inconsistent).
void check_round_params(const RoundParams& params, const std::string& client_id, const SiteRequirements& requirements);

// What a site signs over its keys.
std::string signed_keys_message(uint32_t round, const std::string& client_id, const std::string& cipher_public,
                                const std::string& mask_public);
// What a site signs in the consistency check: the round and its survivors (U3, sorted).
std::string signed_survivors_message(uint32_t round, const std::vector<std::string>& survivors);

class SiteSession {
 public:
  SiteSession(std::string client_id, uint32_t round, RoundParams params, const KeySigner& signer,
              const KeyVerifier& verifier, const SiteRequirements& requirements);
  ~SiteSession();

  // Phase 0: fresh key pairs, signed.
  Keys advertise();
  // Phase 1: checks every peer's certificate and signature (Refusal names
  // the first that fails: the aggregator may have swapped keys) and shares
  // this site's mask private key and self-mask seed among U1.
  Shares share(const PeerKeys& peer_keys);
  // Phase 2: opens the boxes addressed to this site; U2 is their senders
  // and this site. Refusal on a box that does not open or a sender outside U1.
  void receive(const PeerShares& peer_shares);
  // Phase 2: `encoded` (RoundParams::vector_length words) plus the self mask
  // and the pairwise masks with every other site in U2.
  MaskedInput mask(std::vector<uint64_t> encoded);
  // Phase 3: signs the survivors U3 (once; asked again, the same list gets
  // the same signature, another list Refusal). Refusal when U3 leaves this
  // site out, names a site outside U2 or has fewer than t sites.
  ConsistencySignature confirm(const ConsistencyCheck& check);
  // Phase 4: this site's shares of the survivors' seeds and the dropped
  // sites' keys. Refusal unless the request's survivors are the list this
  // site signed and at least t of them signed that same list (checked
  // against the certificates they sent with their keys); also when a site
  // is named both survivor and dropped, a later request names one
  // differently than an earlier one did, or fewer than t survive.
  UnmaskShares unmask(const UnmaskRequest& request);

  const std::vector<std::string>& u2() const { return u2_; }

 private:
  struct PeerState {
    std::string certificate_pem;         // checked in share(); checks its consistency signature
    Key32 cipher_public{}, mask_public{};
    Key32 box_key{};                     // agreed in share(), used again in receive()
    std::string seed_share, key_share;   // share_to_wire, received in phase 2
  };

  std::string client_id_;
  uint32_t round_;
  RoundParams params_;
  uint32_t point_;
  const KeySigner& signer_;
  const KeyVerifier& verifier_;
  Key32 cipher_public_{}, mask_private_{}, mask_public_{}, seed_{};
  std::unique_ptr<X25519Private> cipher_key_, mask_key_;   // loaded once for the round's agreements
  std::map<std::string, PeerState> peers_;     // U1 without this site
  std::vector<std::string> u2_;
  std::string own_seed_share_;                 // this site's share of its own seed (it never reveals its own key)
  std::vector<std::string> survivors_;         // U3 as signed in confirm()
  std::string survivors_signature_;
  std::set<std::string> revealed_seed_, revealed_key_;   // peers whose seed / key share went out
  int phase_ = 0;                              // steps done: 1 advertise, 2 share, 3 receive, 4 mask, 5 confirm
};

// Info strings for HKDF: a pair's mask seed and box key in round r (ids in
// sorted order, so both sides derive the same).
std::string pair_info(const char* purpose, uint32_t round, const std::string& a, const std::string& b);
std::string box_associated_data(uint32_t round, const std::string& from, const std::string& to);

}  // namespace cleave::secagg
