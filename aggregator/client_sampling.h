// Which registered clients train in a round: a seeded, counter-based draw, so
// the sample depends only on (seed, round, the registered ids) and a
// restarted aggregator draws exactly what an uninterrupted one would. The
// "RNG position" to checkpoint is just the round number.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cleave::aggregator {

// How the aggregator picks a round's clients (aggregator.sampling,
// federation.sampling): a fresh uniform draw every round (random), or
// sequential passes over every client (passes, pass_sample). Client-level DP
// always samples by Poisson, what its accountant assumes.
enum class ClientSampling { random, passes };
// Their config names, for aggregator.sampling and federation.sampling alike.
const std::vector<std::pair<std::string, ClientSampling>>& client_sampling_names();

// `count` distinct ids from `registered` (any order; duplicates are an
// error), returned sorted. Throws std::invalid_argument when count exceeds
// the registered clients. Uses its own generator (splitmix64 on seed and
// round) rather than <random> distributions, whose output differs between
// standard libraries.
std::vector<std::string> sample_clients(std::vector<std::string> registered, int64_t count,
                                        uint64_t seed, uint32_t round);

// Sampling without replacement across rounds: the registered ids in an order
// drawn afresh (from seed and the pass) for every pass of ceil(n / count)
// rounds, dealt `count` per round, so every client trains exactly once per
// pass (the last round of a pass takes what is left). With count 1 the sites
// train one after another, each from the adapters the one before it left:
// sequential split learning. Registered ids that change in the middle of a
// pass change the rest of its order. Returned sorted; throws
// std::invalid_argument unless 1 <= count <= the registered clients.
std::vector<std::string> pass_sample(std::vector<std::string> registered, int64_t count, uint64_t seed,
                                     uint32_t round);

// Poisson sampling, as the DP accountant assumes (privacy/rdp_accountant.h):
// each of `registered` takes part independently with probability `rate`, so
// a round may have any number of sites, none included. Same generator and
// reproducibility as sample_clients; returned sorted.
std::vector<std::string> poisson_sample(std::vector<std::string> registered, double rate, uint64_t seed,
                                        uint32_t round);

// How many to sample from `registered` clients: `count` when > 0, else
// ceil(fraction * registered); at least min_clients, at most registered.
int64_t clients_to_sample(int64_t registered, int64_t count, double fraction, int64_t min_clients);

}  // namespace cleave::aggregator
