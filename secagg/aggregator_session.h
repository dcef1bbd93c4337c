// The aggregator's side of one secure aggregation round
// (secagg/secagg_messages.h): it relays keys and share boxes, collects the
// masked inputs, and with t sites' unmask shares removes the masks, so it
// learns the sum of the survivors' inputs and nothing else. Given a
// KeyVerifier it checks the sites' signatures itself, so a site whose keys or
// consistency signature do not verify is left out of the round instead of
// making every honest site refuse it. Phases end when
// every site expected has answered or at their deadline (Clock time passed in
// by the caller); with fewer than t sites left the round fails.
// Not thread-safe (the aggregator service holds its lock).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "secagg/round_params.h"
#include "secagg/secagg_messages.h"

namespace cleave::secagg {

enum class SessionState { keys, shares, masked_input, consistency, unmask, done, failed };
const char* session_state_name(SessionState state);

struct SessionTimes {
  int64_t phase_timeout_ms = 60000;   // keys, shares, consistency and unmask phases each
  int64_t input_deadline_ms = 0;      // clock time by which masked inputs must arrive (at least a phase after the shares)
};

// What a site's Poll gets: exactly one member is set, or none for "wait".
struct PollAnswer {
  std::optional<PeerKeys> peer_keys;
  std::optional<PeerShares> peer_shares;
  std::optional<ConsistencyCheck> consistency;
  std::optional<UnmaskRequest> unmask;
  std::optional<Abort> abort;
};

class KeyVerifier;

class AggregatorSession {
 public:
  // `verifier` may be null: the sites still check.
  AggregatorSession(uint32_t round, RoundParams params, int64_t now, SessionTimes times,
                    std::shared_ptr<const KeyVerifier> verifier = nullptr);

  // Each returns "" when the message is taken, else why it was refused (the
  // round goes on without it).
  std::string on_keys(const Keys& keys);
  std::string on_shares(const Shares& shares);
  std::string on_masked_input(MaskedInput input);
  std::string on_consistency_signature(const ConsistencySignature& signature);
  std::string on_unmask_shares(const UnmaskShares& shares);
  // The site sends nothing more this round: no phase waits for it.
  std::string on_withdraw(const Withdraw& withdraw);

  PollAnswer poll(const Poll& poll) const;

  // Ends phases whose sites all answered or whose deadline passed; unmasks
  // when it can. Call after every message and on every tick.
  void advance(int64_t now);
  // Ends the session without a sum (e.g. too few sites sampled).
  void fail(const std::string& reason);

  SessionState state() const { return state_; }
  bool sent_keys(const std::string& client_id) const { return keys_.count(client_id) > 0; }
  const std::string& failure() const { return failure_; }
  // In state done: the sum of the survivors' inputs, in Z_2^64.
  const std::vector<uint64_t>& sum() const { return sum_; }
  // U3: the sites whose masked input is in the sum (sorted).
  std::vector<std::string> survivors() const;
  std::vector<std::string> dropped() const;   // U2 \ U3, whose pairwise masks were removed
  // Which phase each sampled site dropped out in ("keys", "shares", "masked_input").
  std::map<std::string, std::string> dropouts() const;
  const RoundParams& params() const { return params_; }

 private:
  void enter(SessionState next, int64_t now);
  void unmask_sum();

  uint32_t round_;
  RoundParams params_;
  SessionTimes times_;
  std::shared_ptr<const KeyVerifier> verifier_;
  SessionState state_ = SessionState::keys;
  int64_t deadline_ms_ = 0;
  std::string failure_;
  std::map<std::string, Keys> keys_;                          // U1 (all received, frozen at phase end)
  std::map<std::string, std::map<std::string, std::string>> boxes_;   // sender -> recipient -> box (U2)
  std::map<std::string, std::vector<uint64_t>> inputs_;       // U3
  std::map<std::string, std::string> signatures_;             // U4: signatures over U3
  std::map<std::string, UnmaskShares> unmask_;                // responders
  std::set<std::string> withdrawn_;
  std::vector<uint64_t> sum_;
};

}  // namespace cleave::secagg
