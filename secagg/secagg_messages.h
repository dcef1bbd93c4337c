// The secure aggregation protocol's messages (Bonawitz et al., "Practical
// Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017,
// Figure 4, the active-adversary variant). They travel between a site and
// the aggregator as wire frames (type ids aggregator::FederationMessage
// secagg_*); keys are raw 32-byte strings, boxes and shares opaque bytes.
//
// Round r, sampled sites U0 (RoundParams::sampled):
//  0. each site sends Keys: fresh X25519 public keys for encryption
//     (cipher) and masking (mask), signed with its certificate's key.
//     U1 = the sites whose keys arrived before the phase deadline.
//  1. each site in U1 polls for PeerKeys (U1's keys), checks every signature
//     against the federation CA, Shamir-shares its mask private key and a
//     fresh self-mask seed (threshold t, share points = RoundParams), and
//     sends Shares: one box per peer, sealed under their agreed cipher key.
//     U2 = the sites whose shares arrived.
//  2. each site in U2 trains (while the others share), polls for PeerShares
//     (the boxes addressed to it) and sends MaskedInput: its encoded update
//     and metrics plus its self mask plus, for every other site in U2, +/-
//     the pairwise mask. A site that will not finish sends Withdraw at any
//     phase. U3 = the sites whose masked input arrived.
//  3. consistency check: each site in U3 polls for ConsistencyCheck (U3) and
//     sends ConsistencySignature, its certificate key's signature over U3.
//     U4 = the sites whose signature arrived.
//  4. each site in U4 polls for UnmaskRequest (U3, U2 \ U3 and U4's
//     signatures), checks that at least t sites of U3 signed the same U3 it
//     signed, and sends UnmaskShares: its share of each survivor's self-mask
//     seed and of each dropped site's mask private key, never both for one
//     site. The signatures keep an aggregator from telling some sites that
//     a site survived and others that it dropped, which would collect both
//     of its secrets from different sites.
// With t UnmaskShares the aggregator removes every mask and learns only the
// sum. Fewer than t sites at any phase: the round fails (Abort) without
// anything revealed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cleave::secagg {

enum class Phase : uint8_t { keys = 1, shares = 2, unmask = 3, consistency = 4 };

struct Keys {
  std::string client_id;
  uint32_t round = 0;
  std::string cipher_public;     // 32 bytes
  std::string mask_public;       // 32 bytes
  std::string certificate_pem;   // the site's federation certificate
  std::string signature;         // over signed_keys_message(round, client_id, cipher_public, mask_public)
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, round, cipher_public, mask_public, certificate_pem, signature); }
};

// What a site's poll for the next phase's input names.
struct Poll {
  std::string client_id;
  uint32_t round = 0;
  uint8_t phase = 0;             // Phase
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, round, phase); }
};

struct PeerKeys {
  uint32_t round = 0;
  std::vector<Keys> peers;       // U1, sorted by client id, this site included
  template <class Archive>
  void serialize(Archive& ar) { ar(round, peers); }
};

struct Shares {
  std::string client_id;
  uint32_t round = 0;
  std::map<std::string, std::string> boxes;   // recipient -> sealed ShareBoxContent
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, round, boxes); }
};

struct PeerShares {
  uint32_t round = 0;
  std::map<std::string, std::string> boxes;   // sender -> box sealed for this site; U2 = senders + this site
  template <class Archive>
  void serialize(Archive& ar) { ar(round, boxes); }
};

struct MaskedInput {
  std::string client_id;
  uint32_t round = 0;
  std::vector<uint64_t> masked;               // RoundParams::vector_length words (update, weight, metrics)
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, round, masked); }
};

struct ConsistencyCheck {
  uint32_t round = 0;
  std::vector<std::string> survivors;         // U3, sorted
  template <class Archive>
  void serialize(Archive& ar) { ar(round, survivors); }
};

struct ConsistencySignature {
  std::string client_id;
  uint32_t round = 0;
  std::string signature;                      // over signed_survivors_message(round, U3)
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, round, signature); }
};

struct UnmaskRequest {
  uint32_t round = 0;
  std::vector<std::string> survivors;         // U3, sorted
  std::vector<std::string> dropped;           // U2 \ U3, sorted
  std::map<std::string, std::string> signatures;   // U4 -> its signature over U3
  template <class Archive>
  void serialize(Archive& ar) { ar(round, survivors, dropped, signatures); }
};

struct UnmaskShares {
  std::string client_id;
  uint32_t round = 0;
  std::map<std::string, std::string> seed_shares;   // survivor -> its self-mask seed share (secagg::share_to_wire)
  std::map<std::string, std::string> key_shares;    // dropped -> its mask private key share
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, round, seed_shares, key_shares); }
};

// A site that will send nothing more this round (its training failed, or it
// refused what was relayed) says so, so the phases need not wait for it; the
// aggregator treats it as a dropout from that phase on.
struct Withdraw {
  std::string client_id;
  uint32_t round = 0;
  std::string reason;
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, round, reason); }
};

struct Abort {
  uint32_t round = 0;
  std::string reason;
  template <class Archive>
  void serialize(Archive& ar) { ar(round, reason); }
};

}  // namespace cleave::secagg
