// The aggregator's checkpoint after a completed round, in checkpoint_dir:
//   adapters-round-<r>.gguf          global adapters after round r (rounds count
//                                    from 0, as the logs do; cleave.round = r + 1,
//                                    the rounds completed)
//   strategy-round-<r>.safetensors   the strategy's state tensors (FedAdam/FedYogi
//                                    moments and step), when it has any
//   state.json                       {"format": "cleave.aggregator.state",
//                                    "version": 1, "completed_rounds": k, the
//                                    strategy's name, the sampling seed, the
//                                    registered clients (with the lora rank
//                                    and alpha of those at another rank), the
//                                    last round's accepted sites and their
//                                    weights, the two file names}
// Each file is written atomically (temporary file, fsync, rename) and
// state.json last: it is the commit point, so a crash at any moment leaves
// the previous round's checkpoint whole. Then only the adapters of the last
// `keep_rounds` rounds are kept (strategy state only for the latest: it is
// what a restart needs).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "aggregator/global_adapters.h"

namespace cleave::aggregator {

constexpr const char* kStateFormat = "cleave.aggregator.state";
constexpr int64_t kStateVersion = 1;

struct AggregatorCheckpoint {
  uint32_t completed_rounds = 0;
  std::string strategy;                      // Strategy::name()
  uint64_t seed = 0;                         // client sampling; its position is completed_rounds
  GlobalAdapters global;
  NamedTensors strategy_state;               // Strategy::state()
  std::map<std::string, int64_t> registered; // client id -> num_samples at registration
  // Registered sites at another lora rank or alpha than the global adapters
  // (heterogeneous ranks); every other site runs the global's. Absent from
  // checkpoints written before it existed: every site at the global's.
  std::map<std::string, SiteLora> site_lora;
  // Sites whose updates the last completed round accepted: what a split
  // server that missed that round's end closes it with (split::SyncRound).
  std::vector<std::string> last_round_sites;
  // The weight the aggregator gave each of them (empty: equal weights; absent
  // from checkpoints written before it existed).
  std::vector<double> last_round_weights;
  // Under aggregator.dp: the accountant's RDP per order after dp_rounds rounds.
  std::vector<double> dp_rdp;
  int64_t dp_rounds = 0;
};

// The name of the adapters file written after round `round` (counting from 0).
std::string checkpoint_adapters_file(uint32_t round);

// checkpoint.completed_rounds must be >= 1.
void save_checkpoint(const std::string& dir, const AggregatorCheckpoint& checkpoint, int64_t keep_rounds = 3);

// nullopt when `dir` holds no state.json. Throws std::runtime_error naming the
// file for a state of another format or version, or missing/corrupt files.
std::optional<AggregatorCheckpoint> load_checkpoint(const std::string& dir);

}  // namespace cleave::aggregator
