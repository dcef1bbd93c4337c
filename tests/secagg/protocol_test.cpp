// The secure aggregation protocol end to end between SiteSessions and an
// AggregatorSession, without a network: sums, dropouts at every phase,
// refusals, and what one masked input looks like.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "secagg/aggregator_session.h"
#include "secagg/key_signature.h"
#include "secagg/site_session.h"
#include "secure/ca.h"
#include "tests/support/shared_data.h"

namespace cleave::secagg {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kWords = 257;
constexpr int64_t kPhaseMs = 1000;

// A federation's certificates, made once for the whole file (issuing is the slow part).
class Pki {
 public:
  static Pki& get() {
    static Pki pki;
    return pki;
  }
  const KeySigner& signer(const std::string& id) { return *signers_.at(id); }
  const KeyVerifier& verifier() { return *verifier_; }
  std::shared_ptr<const KeyVerifier> shared_verifier() { return verifier_; }
  const std::vector<std::string>& ids() const { return ids_; }

 private:
  Pki() {
    root_ = test::scratch_dir("secagg_protocol");
    secure::ca_init(root_ + "/ca", "protocol-test");
    secure::IssueOptions fast;
    fast.durable = false;
    for (int i = 0; i < 10; ++i) ids_.push_back("site-" + std::to_string(i));
    const auto nodes = secure::ca_issue_many(root_ + "/ca", secure::NodeRole::client, ids_, root_ + "/nodes", fast);
    for (size_t i = 0; i < ids_.size(); ++i) signers_[ids_[i]] = std::make_unique<KeySigner>(nodes[i].identity);
    verifier_ = std::make_shared<KeyVerifier>(nodes[0].identity);
  }
  ~Pki() { fs::remove_all(root_); }

  std::string root_;
  std::vector<std::string> ids_;
  std::map<std::string, std::unique_ptr<KeySigner>> signers_;
  std::shared_ptr<KeyVerifier> verifier_;
};

RoundParams params_for(size_t n, uint32_t threshold) {
  RoundParams params;
  params.enabled = true;
  params.threshold = threshold;
  params.sampled.assign(Pki::get().ids().begin(), Pki::get().ids().begin() + static_cast<std::ptrdiff_t>(n));
  params.vector_length = kWords;
  return params;
}

std::vector<uint64_t> input_of(const std::string& id) {
  std::mt19937_64 rng(std::hash<std::string>{}(id));
  std::vector<uint64_t> words(kWords);
  for (uint64_t& w : words) w = rng();
  return words;
}

// Where a site stops: before sending its keys, shares, masked input,
// consistency signature or unmask shares.
enum class Stop { keys, shares, masked_input, consistency, unmask_shares, never };
constexpr Stop kEveryPhase[] = {Stop::keys, Stop::shares, Stop::masked_input, Stop::consistency, Stop::unmask_shares};

// One round: every site runs its session, except where `stops` says it
// stops; the aggregator's phases end at their deadlines when sites are
// missing. The aggregator checks the sites' signatures too.
struct Round {
  Round(size_t n, uint32_t threshold, uint32_t round = 7)
      : params(params_for(n, threshold)),
        aggregator(round, params, 0, SessionTimes{kPhaseMs, 10 * kPhaseMs}, Pki::get().shared_verifier()) {
    for (const std::string& id : params.sampled) {
      sites[id] = std::make_unique<SiteSession>(id, round, params, Pki::get().signer(id), Pki::get().verifier(),
                                                SiteRequirements{});
    }
    this->round = round;
  }

  // Sites that stop say so (Withdraw) instead of going silent.
  bool withdraw = false;
  void stopped(const std::string& id, Stop at) {
    if (withdraw && stops.count(id) && stops.at(id) == at) {
      EXPECT_EQ(aggregator.on_withdraw(Withdraw{id, round, "stopped"}), "");
    }
  }

  bool goes_on(const std::string& id, Stop at) const {
    auto it = stops.find(id);
    return it == stops.end() || static_cast<int>(it->second) > static_cast<int>(at);
  }

  // Runs every phase; returns the aggregator's final state.
  SessionState run() {
    for (auto& [id, site] : sites) {
      if (goes_on(id, Stop::keys)) {
        EXPECT_EQ(aggregator.on_keys(site->advertise()), "");
      } else {
        stopped(id, Stop::keys);
      }
    }
    finish_phase(SessionState::keys);
    for (auto& [id, site] : sites) {
      if (!goes_on(id, Stop::keys)) continue;
      const PollAnswer answer = aggregator.poll(Poll{id, round, uint8_t(Phase::keys)});
      if (!answer.peer_keys) return aggregator.state();
      if (goes_on(id, Stop::shares)) {
        EXPECT_EQ(aggregator.on_shares(site->share(*answer.peer_keys)), "");
      } else {
        stopped(id, Stop::shares);
      }
    }
    finish_phase(SessionState::shares);
    for (auto& [id, site] : sites) {
      if (!goes_on(id, Stop::shares)) continue;
      const PollAnswer answer = aggregator.poll(Poll{id, round, uint8_t(Phase::shares)});
      if (!answer.peer_shares) return aggregator.state();
      site->receive(*answer.peer_shares);
      if (goes_on(id, Stop::masked_input)) {
        const MaskedInput input = site->mask(input_of(id));
        masked[id] = input.masked;
        EXPECT_EQ(aggregator.on_masked_input(input), "");
      } else {
        stopped(id, Stop::masked_input);
      }
    }
    finish_phase(SessionState::masked_input);
    for (auto& [id, site] : sites) {
      if (!goes_on(id, Stop::masked_input)) continue;
      const PollAnswer answer = aggregator.poll(Poll{id, round, uint8_t(Phase::consistency)});
      if (!answer.consistency) return aggregator.state();
      if (goes_on(id, Stop::consistency)) {
        EXPECT_EQ(aggregator.on_consistency_signature(site->confirm(*answer.consistency)), "");
      } else {
        stopped(id, Stop::consistency);
      }
    }
    finish_phase(SessionState::consistency);
    for (auto& [id, site] : sites) {
      if (!goes_on(id, Stop::consistency)) continue;
      const PollAnswer answer = aggregator.poll(Poll{id, round, uint8_t(Phase::unmask)});
      if (!answer.unmask) return aggregator.state();
      if (goes_on(id, Stop::unmask_shares)) {
        EXPECT_EQ(aggregator.on_unmask_shares(site->unmask(*answer.unmask)), "");
      } else {
        stopped(id, Stop::unmask_shares);
      }
    }
    finish_phase(SessionState::unmask);
    return aggregator.state();
  }

  // Moves the clock past the phase's deadline unless every site answered.
  void finish_phase(SessionState phase) {
    aggregator.advance(now);
    if (aggregator.state() == phase) {
      now += 10 * kPhaseMs;
      aggregator.advance(now);
    }
  }

  std::vector<uint64_t> expected_sum(const std::vector<std::string>& ids) const {
    std::vector<uint64_t> sum(kWords, 0);
    for (const std::string& id : ids) {
      const std::vector<uint64_t> input = input_of(id);
      for (int64_t i = 0; i < kWords; ++i) sum[i] += input[i];
    }
    return sum;
  }

  uint32_t round = 0;
  RoundParams params;
  AggregatorSession aggregator;
  std::map<std::string, std::unique_ptr<SiteSession>> sites;
  std::map<std::string, Stop> stops;
  std::map<std::string, std::vector<uint64_t>> masked;
  int64_t now = 0;
};

TEST(SecureAggregationProtocol, UnmaskedSumIsTheSumOfTheInputs) {
  Round round(5, 3);
  ASSERT_EQ(round.run(), SessionState::done) << round.aggregator.failure();
  EXPECT_EQ(round.aggregator.survivors().size(), 5u);
  EXPECT_TRUE(round.aggregator.dropouts().empty());
  EXPECT_EQ(round.aggregator.sum(), round.expected_sum(round.params.sampled));
  // No masked input is its site's input.
  for (const auto& [id, words] : round.masked) EXPECT_NE(words, input_of(id)) << id;
}

// A third of nine sites drop out at each phase in turn: the round still
// closes, with exactly the sum of the sites whose masked input arrived.
TEST(SecureAggregationProtocol, DropoutsOfAThirdAtEachPhaseStillGiveTheSurvivorsSum) {
  for (Stop stop : kEveryPhase) {
    Round round(9, 5);
    for (const char* id : {"site-1", "site-4", "site-8"}) round.stops[id] = stop;
    ASSERT_EQ(round.run(), SessionState::done) << "stop " << int(stop) << ": " << round.aggregator.failure();
    std::vector<std::string> in_sum;
    for (const std::string& id : round.params.sampled) {
      if (round.goes_on(id, Stop::masked_input)) in_sum.push_back(id);
    }
    EXPECT_EQ(round.aggregator.survivors(), in_sum);
    EXPECT_EQ(round.aggregator.sum(), round.expected_sum(in_sum)) << "stop " << int(stop);
    // A site that stops after its masked input is in the sum: it is no dropout.
    const size_t dropped_out = stop == Stop::unmask_shares || stop == Stop::consistency ? 0u : 3u;
    EXPECT_EQ(round.aggregator.dropouts().size(), dropped_out);
    EXPECT_EQ(round.aggregator.dropped().size(), stop == Stop::masked_input ? 3u : 0u);
  }
}

// Sites that withdraw instead of going silent: every phase ends as soon as
// the rest have answered, without waiting for a deadline.
TEST(SecureAggregationProtocol, WithdrawnSitesAreNotWaitedFor) {
  for (Stop stop : kEveryPhase) {
    Round round(9, 5);
    round.withdraw = true;
    for (const char* id : {"site-2", "site-6"}) round.stops[id] = stop;
    ASSERT_EQ(round.run(), SessionState::done) << "stop " << int(stop) << ": " << round.aggregator.failure();
    EXPECT_EQ(round.now, 0) << "stop " << int(stop) << ": a phase waited for its deadline";
    std::vector<std::string> in_sum;
    for (const std::string& id : round.params.sampled) {
      if (round.goes_on(id, Stop::masked_input)) in_sum.push_back(id);
    }
    EXPECT_EQ(round.aggregator.sum(), round.expected_sum(in_sum)) << "stop " << int(stop);
  }
  // A withdrawn site's later messages are refused.
  Round round(4, 3);
  const Keys keys = round.sites.at("site-0")->advertise();
  EXPECT_EQ(round.aggregator.on_withdraw(Withdraw{"site-0", round.round, "changed its mind"}), "");
  EXPECT_NE(round.aggregator.on_keys(keys), "");
  EXPECT_NE(round.aggregator.on_withdraw(Withdraw{"site-9", round.round, ""}), "") << "not sampled";
}

TEST(SecureAggregationProtocol, DropoutsSpreadOverThePhases) {
  Round round(9, 5);
  round.stops = {{"site-0", Stop::keys}, {"site-3", Stop::shares}, {"site-5", Stop::masked_input},
                 {"site-7", Stop::unmask_shares}};
  ASSERT_EQ(round.run(), SessionState::done) << round.aggregator.failure();
  const std::vector<std::string> in_sum = {"site-1", "site-2", "site-4", "site-6", "site-7", "site-8"};
  EXPECT_EQ(round.aggregator.sum(), round.expected_sum(in_sum));
  const std::map<std::string, std::string> dropouts = {
      {"site-0", "keys"}, {"site-3", "shares"}, {"site-5", "masked_input"}};
  EXPECT_EQ(round.aggregator.dropouts(), dropouts);
}

TEST(SecureAggregationProtocol, FewerThanTheThresholdFailsTheRoundCleanlyAndTheNextGoesOn) {
  Round failing(9, 5);
  for (const char* id : {"site-0", "site-2", "site-4", "site-6", "site-8"}) failing.stops[id] = Stop::masked_input;
  EXPECT_EQ(failing.run(), SessionState::failed);
  EXPECT_NE(failing.aggregator.failure().find("4 of 9 sites sent their masked inputs, fewer than the threshold 5"),
            std::string::npos)
      << failing.aggregator.failure();
  EXPECT_TRUE(failing.aggregator.sum().empty());
  // A site polling the failed round is told it ended.
  const PollAnswer answer = failing.aggregator.poll(Poll{"site-1", failing.round, uint8_t(Phase::unmask)});
  ASSERT_TRUE(answer.abort);

  Round next(9, 5, failing.round + 1);
  ASSERT_EQ(next.run(), SessionState::done);
  EXPECT_EQ(next.aggregator.sum(), next.expected_sum(next.params.sampled));
}

TEST(SecureAggregationProtocol, UnmaskingFailsWithFewerThanThresholdShares) {
  Round round(5, 3);
  round.stops = {{"site-0", Stop::unmask_shares}, {"site-1", Stop::unmask_shares}, {"site-2", Stop::unmask_shares}};
  EXPECT_EQ(round.run(), SessionState::failed);
  EXPECT_NE(round.aggregator.failure().find("2 of 5 survivors sent unmask shares"), std::string::npos)
      << round.aggregator.failure();
}

// Refusal whose message holds `needle`.
void expect_refusal(const std::function<void()>& step, const std::string& needle) {
  try {
    step();
    ADD_FAILURE() << "no refusal (expected one naming '" << needle << "')";
  } catch (const Refusal& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// An honest site never gives out both the self-mask seed and the mask key of
// one peer in a round: with both, the aggregator could unmask that peer alone.
TEST(SecureAggregationProtocol, AnHonestSiteRefusesToRevealBothSecretsOfOnePeer) {
  Round round(5, 3);
  round.stops = {{"site-4", Stop::unmask_shares}};
  ASSERT_EQ(round.run(), SessionState::done);
  SiteSession& site = *round.sites.at("site-0");
  // Already gave out site-1's seed share: now asked for site-1's key, under
  // another survivors' list than the one it signed.
  UnmaskRequest second{round.round, {"site-0", "site-2", "site-3", "site-4"}, {"site-1"}, {}};
  expect_refusal([&] { site.unmask(second); }, "signed");
  // The real request, altered to name a survivor dropped as well.
  const UnmaskRequest real = *round.aggregator.poll(Poll{"site-4", round.round, uint8_t(Phase::unmask)}).unmask;
  UnmaskRequest both = real;
  both.dropped = {"site-2"};
  expect_refusal([&] { round.sites.at("site-4")->unmask(both); }, "both survivor and dropped");
  // The same request again is answered (a resend after a lost reply).
  EXPECT_NO_THROW(round.sites.at("site-4")->unmask(real));
  EXPECT_NO_THROW(round.sites.at("site-4")->unmask(real));
}

// Every site of `round` sends keys, shares and masked input; the aggregator
// is left waiting for consistency signatures.
void run_to_consistency(Round& round) {
  AggregatorSession& aggregator = round.aggregator;
  for (auto& [id, site] : round.sites) ASSERT_EQ(aggregator.on_keys(site->advertise()), "");
  aggregator.advance(0);
  for (auto& [id, site] : round.sites) {
    ASSERT_EQ(aggregator.on_shares(site->share(*aggregator.poll(Poll{id, round.round, 1}).peer_keys)), "");
  }
  aggregator.advance(0);
  for (auto& [id, site] : round.sites) {
    site->receive(*aggregator.poll(Poll{id, round.round, 2}).peer_shares);
    ASSERT_EQ(aggregator.on_masked_input(site->mask(input_of(id))), "");
  }
  aggregator.advance(0);
  ASSERT_EQ(aggregator.state(), SessionState::consistency);
}

// Bonawitz et al.'s consistency check: an aggregator that tells sites 0-2
// that site-4 dropped (to collect its mask key) and sites 3-4 that it
// survived (to collect its self-mask seed) gets the key shares at most, never
// the seed shares: t sites must have signed the same survivors' list, and with
// t > n/2 no two lists can each have t honest signers.
TEST(SecureAggregationProtocol, TheConsistencyCheckStopsAnAggregatorThatTellsSitesDifferentSurvivors) {
  Round round(5, 3);
  run_to_consistency(round);
  std::map<std::string, SiteSession*> site;
  for (auto& [id, session] : round.sites) site[id] = session.get();

  const std::vector<std::string> all = round.params.sampled;
  const std::vector<std::string> without_4 = {"site-0", "site-1", "site-2", "site-3"};
  std::map<std::string, std::string> signed_without_4, signed_all;
  for (const char* id : {"site-0", "site-1", "site-2"}) {
    signed_without_4[id] = site[id]->confirm(ConsistencyCheck{round.round, without_4}).signature;
  }
  for (const char* id : {"site-3", "site-4"}) signed_all[id] = site[id]->confirm(ConsistencyCheck{round.round, all}).signature;
  // A site signs one list per round.
  expect_refusal([&] { site["site-0"]->confirm(ConsistencyCheck{round.round, all}); }, "already signed");

  // Three sites signed "site-4 dropped": they give its mask key share.
  const UnmaskShares key_shares =
      site["site-0"]->unmask(UnmaskRequest{round.round, without_4, {"site-4"}, signed_without_4});
  EXPECT_EQ(key_shares.key_shares.count("site-4"), 1u);
  // Only two signed "site-4 survived": fewer than t, so no seed share of it.
  expect_refusal([&] { site["site-3"]->unmask(UnmaskRequest{round.round, all, {}, signed_all}); },
                 "fewer than the threshold");
  // Passing the other sites' signatures off as signatures of this list fails.
  std::map<std::string, std::string> mixed = signed_all;
  mixed.insert(signed_without_4.begin(), signed_without_4.end());
  expect_refusal([&] { site["site-4"]->unmask(UnmaskRequest{round.round, all, {}, mixed}); },
                 "told the sites different survivors");
  // Nor does a site unmask under a list other than the one it signed.
  expect_refusal([&] { site["site-3"]->unmask(UnmaskRequest{round.round, without_4, {"site-4"}, signed_without_4}); },
                 "signed");
}

// The aggregator checks signatures itself: a site whose keys carry a bad
// signature is left out at the keys phase (honest sites would all refuse its
// keys), and a consistency signature over another list is refused; the
// round goes on with the others.
TEST(SecureAggregationProtocol, TheAggregatorLeavesOutSitesWhoseSignaturesDoNotVerify) {
  Round round(5, 3);
  Keys forged = round.sites.at("site-2")->advertise();
  forged.signature[10] ^= 1;
  EXPECT_NE(round.aggregator.on_keys(forged).find("do not verify"), std::string::npos);
  Keys misnamed = round.sites.at("site-3")->advertise();
  misnamed.client_id = "site-1";   // site-3's certificate under site-1's name
  EXPECT_NE(round.aggregator.on_keys(misnamed), "");
  round.sites.erase("site-2");
  round.sites.erase("site-3");
  // The other three run the round to its end.
  ASSERT_EQ(round.run(), SessionState::done) << round.aggregator.failure();
  EXPECT_EQ(round.aggregator.sum(), round.expected_sum({"site-0", "site-1", "site-4"}));

  // A signature over another list than the survivors is refused; with
  // fewer than t signatures the round fails without unmasking.
  Round third(4, 3, 12);
  run_to_consistency(third);
  const KeySigner& signer = Pki::get().signer("site-0");
  const std::string other_list = signed_survivors_message(third.round, {"site-0", "site-1", "site-2"});
  EXPECT_NE(third.aggregator.on_consistency_signature(ConsistencySignature{"site-0", third.round, signer.sign(other_list)})
                .find("does not verify"),
            std::string::npos);
  const std::string survivors = signed_survivors_message(third.round, third.params.sampled);
  EXPECT_EQ(third.aggregator.on_consistency_signature(ConsistencySignature{"site-0", third.round, signer.sign(survivors)}),
            "");
  third.now += 20 * kPhaseMs;
  third.aggregator.advance(third.now);
  EXPECT_EQ(third.aggregator.state(), SessionState::failed);
  EXPECT_NE(third.aggregator.failure().find("1 of 4 sites sent their consistency signatures"), std::string::npos)
      << third.aggregator.failure();
}

TEST(SecureAggregationProtocol, SwappedPublicKeysAreDetected) {
  Round round(4, 3);
  std::map<std::string, Keys> keys;
  for (auto& [id, site] : round.sites) {
    keys[id] = site->advertise();
    ASSERT_EQ(round.aggregator.on_keys(keys[id]), "");
  }
  round.aggregator.advance(0);
  PeerKeys relayed = *round.aggregator.poll(Poll{"site-0", round.round, uint8_t(Phase::keys)}).peer_keys;

  // The aggregator puts its own key under site-1's name (it cannot sign it).
  PeerKeys swapped = relayed;
  swapped.peers[1].cipher_public = std::string(32, '\x42');
  SiteSession victim("site-0", round.round, round.params, Pki::get().signer("site-0"), Pki::get().verifier(), {});
  // A fresh session for site-0 has other keys; rebuild the list around them.
  const Keys own = victim.advertise();
  swapped.peers[0] = own;
  try {
    victim.share(swapped);
    FAIL() << "swapped keys were accepted";
  } catch (const Refusal& e) {
    EXPECT_NE(std::string(e.what()).find("site-1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("swapped"), std::string::npos) << e.what();
  }
  // Site-2's genuinely signed keys relayed as site-1's: the certificate names another site.
  PeerKeys renamed = relayed;
  renamed.peers[0] = own;
  renamed.peers[1] = keys.at("site-2");
  renamed.peers[1].client_id = "site-1";
  SiteSession victim2("site-0", round.round, round.params, Pki::get().signer("site-0"), Pki::get().verifier(), {});
  renamed.peers[0] = victim2.advertise();
  EXPECT_THROW(victim2.share(renamed), Refusal);
  // Other keys relayed under the site's own name.
  PeerKeys self_swapped = relayed;
  EXPECT_THROW(victim.share(self_swapped), Refusal);
}

// One site's masked input carries no trace of its input: with an all-zero
// input its bytes pass a chi-square test for uniformity (255 degrees of
// freedom: mean 255, sd 22.6; the bounds 150 and 400 are about 1e-9 in each
// tail, since the keys come from the OS), as do those of an input of all ones.
TEST(SecureAggregationProtocol, OneMaskedInputIsIndistinguishableFromUniform) {
  RoundParams params = params_for(3, 2);
  params.vector_length = 1 << 15;
  for (uint64_t fill : {uint64_t{0}, ~uint64_t{0}}) {
    AggregatorSession aggregator(3, params, 0, SessionTimes{kPhaseMs, kPhaseMs});
    std::map<std::string, std::unique_ptr<SiteSession>> sites;
    for (const std::string& id : params.sampled) {
      sites[id] = std::make_unique<SiteSession>(id, 3, params, Pki::get().signer(id), Pki::get().verifier(),
                                                SiteRequirements{0, 0.5, 3});
      ASSERT_EQ(aggregator.on_keys(sites[id]->advertise()), "");
    }
    aggregator.advance(0);
    for (auto& [id, site] : sites) {
      ASSERT_EQ(aggregator.on_shares(site->share(*aggregator.poll(Poll{id, 3, 1}).peer_keys)), "");
    }
    aggregator.advance(0);
    SiteSession& site = *sites.at("site-0");
    site.receive(*aggregator.poll(Poll{"site-0", 3, 2}).peer_shares);
    const MaskedInput input = site.mask(std::vector<uint64_t>(params.vector_length, fill));
    std::vector<double> counts(256, 0);
    for (uint64_t word : input.masked) {
      for (int b = 0; b < 8; ++b) counts[(word >> (8 * b)) & 0xff] += 1;
    }
    const double expected = 8.0 * params.vector_length / 256.0;
    double chi2 = 0;
    for (double c : counts) chi2 += (c - expected) * (c - expected) / expected;
    EXPECT_LT(chi2, 400.0) << "fill " << fill;
    EXPECT_GT(chi2, 150.0) << "fill " << fill << ": too even to be random";
  }
}

TEST(SecureAggregationProtocol, MalformedAndReplayedMessagesAreRefusedWhileTheRoundGoesOn) {
  Round round(4, 3);
  std::map<std::string, Keys> keys;
  for (auto& [id, site] : round.sites) keys[id] = site->advertise();
  Keys short_key = keys.at("site-0");
  short_key.cipher_public.resize(31);
  EXPECT_NE(round.aggregator.on_keys(short_key), "");
  Keys stranger = keys.at("site-0");
  stranger.client_id = "site-9";
  EXPECT_NE(round.aggregator.on_keys(stranger), "");
  for (auto& [id, k] : keys) ASSERT_EQ(round.aggregator.on_keys(k), "");
  EXPECT_EQ(round.aggregator.on_keys(keys.at("site-1")), "") << "a resend is taken";
  Keys other = keys.at("site-1");
  other.mask_public = keys.at("site-2").mask_public;
  EXPECT_NE(round.aggregator.on_keys(other), "") << "other keys under the same name";
  round.aggregator.advance(0);
  ASSERT_EQ(round.aggregator.state(), SessionState::shares);

  std::map<std::string, Shares> shares;
  for (auto& [id, site] : round.sites) {
    shares[id] = site->share(*round.aggregator.poll(Poll{id, round.round, 1}).peer_keys);
  }
  Shares missing_box = shares.at("site-0");
  missing_box.boxes.erase("site-1");
  EXPECT_NE(round.aggregator.on_shares(missing_box), "");
  for (auto& [id, s] : shares) ASSERT_EQ(round.aggregator.on_shares(s), "");
  round.aggregator.advance(0);
  ASSERT_EQ(round.aggregator.state(), SessionState::masked_input);

  // A box from another round (replayed) or altered does not open.
  Round other_round(4, 3, round.round + 1);
  for (auto& [id, site] : other_round.sites) ASSERT_EQ(other_round.aggregator.on_keys(site->advertise()), "");
  other_round.aggregator.advance(0);
  for (auto& [id, site] : other_round.sites) {
    ASSERT_EQ(other_round.aggregator.on_shares(
                  site->share(*other_round.aggregator.poll(Poll{id, other_round.round, 1}).peer_keys)),
              "");
  }
  other_round.aggregator.advance(0);
  PeerShares replayed = *round.aggregator.poll(Poll{"site-0", round.round, 2}).peer_shares;
  replayed.round = other_round.round;
  EXPECT_THROW(other_round.sites.at("site-0")->receive(replayed), Refusal);
  PeerShares altered = *round.aggregator.poll(Poll{"site-0", round.round, 2}).peer_shares;
  altered.boxes.begin()->second[20] ^= 1;
  SiteSession& site0 = *round.sites.at("site-0");
  EXPECT_THROW(site0.receive(altered), Refusal);

  for (auto& [id, site] : round.sites) {
    if (id != "site-0") site->receive(*round.aggregator.poll(Poll{id, round.round, 2}).peer_shares);
  }
  MaskedInput wrong_length = round.sites.at("site-1")->mask(input_of("site-1"));
  MaskedInput good = wrong_length;
  wrong_length.masked.pop_back();
  EXPECT_NE(round.aggregator.on_masked_input(wrong_length), "");
  EXPECT_EQ(round.aggregator.on_masked_input(good), "");
  for (const char* id : {"site-2", "site-3"}) {
    ASSERT_EQ(round.aggregator.on_masked_input(round.sites.at(id)->mask(input_of(id))), "");
  }
  round.now = 20 * kPhaseMs;   // site-0 (whose shares box was altered) never sends: it dropped
  round.aggregator.advance(round.now);
  ASSERT_EQ(round.aggregator.state(), SessionState::consistency);
  const ConsistencySignature signature =
      round.sites.at("site-1")->confirm(*round.aggregator.poll(Poll{"site-1", round.round, 4}).consistency);
  ConsistencySignature altered_signature = signature;
  altered_signature.signature[12] ^= 1;
  EXPECT_NE(round.aggregator.on_consistency_signature(altered_signature), "");
  ConsistencySignature from_dropped = signature;
  from_dropped.client_id = "site-0";
  EXPECT_NE(round.aggregator.on_consistency_signature(from_dropped), "") << "site-0 sent no masked input";
  EXPECT_EQ(round.aggregator.on_consistency_signature(signature), "");
  EXPECT_EQ(round.aggregator.on_consistency_signature(signature), "") << "a resend is taken";
  for (const char* id : {"site-2", "site-3"}) {
    ASSERT_EQ(round.aggregator.on_consistency_signature(
                  round.sites.at(id)->confirm(*round.aggregator.poll(Poll{id, round.round, 4}).consistency)),
              "");
  }
  round.aggregator.advance(round.now);
  ASSERT_EQ(round.aggregator.state(), SessionState::unmask);

  std::map<std::string, UnmaskShares> unmask;
  for (const char* id : {"site-1", "site-2", "site-3"}) {
    unmask[id] = round.sites.at(id)->unmask(*round.aggregator.poll(Poll{id, round.round, 3}).unmask);
  }
  UnmaskShares wrong_point = unmask.at("site-1");
  wrong_point.seed_shares["site-2"] = unmask.at("site-2").seed_shares.at("site-2");
  EXPECT_NE(round.aggregator.on_unmask_shares(wrong_point), "");
  UnmaskShares garbage = unmask.at("site-1");
  garbage.key_shares["site-0"] = "nonsense";
  EXPECT_NE(round.aggregator.on_unmask_shares(garbage), "");
  for (auto& [id, s] : unmask) ASSERT_EQ(round.aggregator.on_unmask_shares(s), "");
  round.aggregator.advance(round.now);
  ASSERT_EQ(round.aggregator.state(), SessionState::done) << round.aggregator.failure();
  EXPECT_EQ(round.aggregator.sum(), round.expected_sum({"site-1", "site-2", "site-3"}));
}

TEST(SecureAggregationProtocol, SitesRefuseRoundsThatAskForLessThanTheyRequire) {
  const std::string id = "site-0";
  RoundParams plain;
  EXPECT_NO_THROW(check_round_params(plain, id, SiteRequirements{}));
  EXPECT_THROW(check_round_params(plain, id, SiteRequirements{true, 0.5, 3}), Refusal);
  RoundParams low = params_for(6, 3);   // 3 of 6 is not more than half
  EXPECT_THROW(check_round_params(low, id, SiteRequirements{}), Refusal);
  EXPECT_NO_THROW(check_round_params(params_for(6, 4), id, SiteRequirements{}));
  EXPECT_THROW(check_round_params(params_for(6, 4), id, SiteRequirements{false, 0.7, 3}), Refusal);
  EXPECT_THROW(check_round_params(params_for(2, 2), id, SiteRequirements{}), Refusal);   // too few sites
  EXPECT_THROW(check_round_params(params_for(6, 4), "site-9", SiteRequirements{}), Refusal);   // not sampled
  RoundParams overflowing = params_for(6, 4);
  overflowing.scale_bits = 60;
  EXPECT_THROW(check_round_params(overflowing, id, SiteRequirements{}), Refusal);
}

TEST(SecureAggregationProtocol, OverflowBound) {
  EXPECT_TRUE(fits_in_sum(100000, 65536, 4.0, 24));
  EXPECT_TRUE(fits_in_sum(1, 1, 1.0, 61));
  EXPECT_FALSE(fits_in_sum(2, 1, 1.0, 62));
  // 2^20 sites * 2^16 * 2^2 * 2^24 = 2^62 (plus rounding) fits; twice as many sites do not.
  EXPECT_TRUE(fits_in_sum(int64_t{1} << 20, 1 << 16, 4.0, 24));
  EXPECT_FALSE(fits_in_sum(int64_t{1} << 21, 1 << 16, 4.0, 24));
}

}  // namespace
}  // namespace cleave::secagg
