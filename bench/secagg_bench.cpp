// Secure aggregation's compute (issue 13): one round of the protocol between n
// sites and the aggregator in one process, no network, on vectors of L words
// (the adapters' elements + 1). Prints, per n, the time one site spends in
// each phase (keys; verifying n-1 peers' certificates and signatures and
// sharing; opening n-1 boxes; masking: n expansions of L words by AES-CTR;
// signing the survivors; unmasking, which checks the survivors' signatures)
// and the aggregator's unmasking with no dropout and with a tenth of the
// sites dropped before their masked input. The aggregator checks every
// signature too, as `cleave aggregator` does.
// Usage: secagg_bench [--words L] [--sites N,N,...]   (--help says more)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <memory>
#include <string>
#include <vector>

#include "secagg/aggregator_session.h"
#include "secagg/key_signature.h"
#include "secagg/site_session.h"
#include "secure/ca.h"
#include "util/args.h"

using namespace cleave;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct PhaseTimes {
  double keys = 0, share = 0, receive = 0, mask = 0, confirm = 0, unmask = 0;
};

// One round with `dropped` sites leaving after the shares; returns site 0's
// times and the aggregator's unmasking time.
std::pair<PhaseTimes, double> one_round(size_t n, size_t dropped, int64_t words,
                                        const std::vector<std::string>& ids,
                                        const std::map<std::string, std::unique_ptr<secagg::KeySigner>>& signers,
                                        const secagg::KeyVerifier& verifier,
                                        const std::shared_ptr<const secagg::KeyVerifier>& aggregator_verifier) {
  secagg::RoundParams params;
  params.enabled = true;
  params.sampled.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n));
  params.threshold = static_cast<uint32_t>(n / 2 + 1);
  params.vector_length = words;
  secagg::AggregatorSession aggregator(1, params, 0, secagg::SessionTimes{1000, 1000}, aggregator_verifier);
  std::map<std::string, std::unique_ptr<secagg::SiteSession>> sites;
  PhaseTimes site0;
  for (const std::string& id : params.sampled) {
    sites[id] = std::make_unique<secagg::SiteSession>(id, 1, params, *signers.at(id), verifier,
                                                      secagg::SiteRequirements{});
    const auto start = Clock::now();
    const secagg::Keys keys = sites[id]->advertise();
    if (id == ids[0]) site0.keys = ms_since(start);
    aggregator.on_keys(keys);
  }
  aggregator.advance(0);
  for (auto& [id, site] : sites) {
    const secagg::PeerKeys peers = *aggregator.poll(secagg::Poll{id, 1, 1}).peer_keys;
    const auto start = Clock::now();
    const secagg::Shares shares = site->share(peers);
    if (id == ids[0]) site0.share = ms_since(start);
    aggregator.on_shares(shares);
  }
  aggregator.advance(0);
  size_t k = 0;
  for (auto& [id, site] : sites) {
    const secagg::PeerShares boxes = *aggregator.poll(secagg::Poll{id, 1, 2}).peer_shares;
    auto start = Clock::now();
    site->receive(boxes);
    if (id == ids[0]) site0.receive = ms_since(start);
    if (k++ >= n - dropped) continue;   // the last `dropped` sites drop out here
    std::vector<uint64_t> input(static_cast<size_t>(words), 7);
    start = Clock::now();
    secagg::MaskedInput masked = site->mask(std::move(input));
    if (id == ids[0]) site0.mask = ms_since(start);
    aggregator.on_masked_input(std::move(masked));
  }
  aggregator.advance(dropped > 0 ? 2000 : 0);
  for (const std::string& id : aggregator.survivors()) {
    const secagg::ConsistencyCheck check = *aggregator.poll(secagg::Poll{id, 1, 4}).consistency;
    const auto start = Clock::now();
    const secagg::ConsistencySignature signature = sites.at(id)->confirm(check);
    if (id == ids[0]) site0.confirm = ms_since(start);
    aggregator.on_consistency_signature(signature);
  }
  aggregator.advance(dropped > 0 ? 2000 : 0);
  for (const std::string& id : aggregator.survivors()) {
    const secagg::UnmaskRequest request = *aggregator.poll(secagg::Poll{id, 1, 3}).unmask;
    const auto start = Clock::now();
    const secagg::UnmaskShares shares = sites.at(id)->unmask(request);
    if (id == ids[0]) site0.unmask = ms_since(start);
    aggregator.on_unmask_shares(shares);
  }
  const auto start = Clock::now();
  aggregator.advance(dropped > 0 ? 2000 : 0);
  const double unmask_ms = ms_since(start);
  if (aggregator.state() != secagg::SessionState::done) {
    std::fprintf(stderr, "round failed: %s\n", aggregator.failure().c_str());
    std::exit(1);
  }
  return {site0, unmask_ms};
}

ArgParser flags() {
  return ArgParser("secagg_bench", "[--words L] [--sites N,N,...]",
                   "One round of secure aggregation between N sites and the aggregator in one\n"
                   "process, no network: each phase's time for one site and the aggregator's\n"
                   "unmasking, with no dropout and with a tenth of the sites dropped.")
      .value("--words", "L", "words per masked vector (the adapters' elements + 1)").defaults_to(131073)
      .value("--sites", "N,N,...", "sites in the round, a row per count (repeatable)").defaults_to("10,50,100");
}

int run(const ParsedArgs& args) {
  const int64_t words = args.get_int("--words");
  if (words < 1) throw UsageError("--words must be >= 1");
  std::vector<size_t> sizes;
  for (const std::string& list : args.all("--sites")) {
    std::istringstream counts(list);
    for (std::string n; std::getline(counts, n, ',');) {
      char* end = nullptr;
      const long long sites = std::strtoll(n.c_str(), &end, 10);
      if (n.empty() || *end != '\0' || sites < 2) throw UsageError("--sites expects counts >= 2, got '" + n + "'");
      sizes.push_back(static_cast<size_t>(sites));
    }
  }
  size_t most = 0;
  for (size_t n : sizes) most = std::max(most, n);

  const std::string root = (std::filesystem::temp_directory_path() / "cleave_secagg_bench").string();
  std::filesystem::remove_all(root);
  secure::ca_init(root + "/ca", "secagg-bench");
  secure::IssueOptions fast;
  fast.durable = false;
  std::vector<std::string> ids;
  for (size_t i = 0; i < most; ++i) ids.push_back("site-" + std::to_string(1000 + i));
  const auto nodes = secure::ca_issue_many(root + "/ca", secure::NodeRole::client, ids, root + "/nodes", fast);
  std::map<std::string, std::unique_ptr<secagg::KeySigner>> signers;
  for (size_t i = 0; i < ids.size(); ++i) signers[ids[i]] = std::make_unique<secagg::KeySigner>(nodes[i].identity);
  const auto verifier = std::make_shared<const secagg::KeyVerifier>(nodes[0].identity);
  // The aggregator's own (its chain cache must not warm the sites').
  const auto aggregator_verifier = std::make_shared<const secagg::KeyVerifier>(nodes[0].identity);

  std::printf("vector: %lld words (%.1f MiB masked)\n\n", static_cast<long long>(words),
              static_cast<double>(words) * 8 / (1 << 20));
  std::printf("| sites | site: keys ms | site: verify + share ms | site: open boxes ms | site: mask ms | "
              "site: sign survivors ms | site: unmask ms | aggregator unmask ms | aggregator unmask, 10%% dropped ms |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (size_t n : sizes) {
    const auto [site, unmask] = one_round(n, 0, words, ids, signers, *verifier, aggregator_verifier);
    const auto [site_d, unmask_dropped] = one_round(n, std::max<size_t>(1, n / 10), words, ids, signers, *verifier,
                                              aggregator_verifier);
    (void)site_d;
    std::printf("| %zu | %.2f | %.1f | %.2f | %.1f | %.2f | %.2f | %.1f | %.1f |\n", n, site.keys, site.share,
                site.receive, site.mask, site.confirm, site.unmask, unmask, unmask_dropped);
  }
  std::filesystem::remove_all(root);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_with_flags(flags(), argc, argv, run); }
