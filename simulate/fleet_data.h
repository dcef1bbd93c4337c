// The data of a simulated fleet: one pool of tokenized examples, each site
// holding only indices into it (its training examples and its held-out
// split), plus a global held-out set. A site's examples are copied out of the
// pool only while the site is instantiated for a round.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>
#include <vector>

#include "client/dataset.h"
#include "simulate/simulation_config.h"

namespace cleave {
class Tokenizer;
}

namespace cleave::simulate {

struct SiteData {
  std::string id;                // "site-003", or the source file's stem (natural)
  std::vector<size_t> train;     // indices into FleetData::examples
  std::vector<size_t> eval;      // held out of this site for its own perplexity
  std::vector<size_t> validation; // held out of its training examples to stop and tune (federation.validation_fraction)
};

struct FleetData {
  std::vector<data::Example> examples;    // the pool
  std::vector<SiteData> sites;
  std::vector<data::Example> global_eval; // never trained on by any site
  std::vector<data::Example> validation;  // the sites' validation splits, sources mixed; empty: none

  std::vector<data::Example> gather(const std::vector<size_t>& indices) const;
  std::vector<data::Example> all_train() const;   // every site's training examples, site by site
  size_t train_count() const;
};

// Splits `examples` (groups[i]: the label or source of example i, used by the
// dirichlet and natural partitions) over sites as options.partition says,
// then holds out options.client_eval_fraction of each site (seeded, at least
// one example when the site has two or more), then options.validation_fraction
// of what is left for training (the union: FleetData::validation). When `global_eval` is empty
// the global held-out set is the union of the sites' held-out splits.
// Natural sites are named after their group (the file stem); others
// "site-<n>". Throws std::invalid_argument when a site ends up with nothing
// to train on.
FleetData partition_fleet(std::vector<data::Example> examples, const std::vector<std::string>& groups,
                          std::vector<data::Example> global_eval, const FleetOptions& options, uint64_t seed);

// The files of config.train_files with globs expanded (each pattern's
// matches sorted; a pattern matching nothing is an error naming it).
std::vector<std::string> expand_train_files(const std::vector<std::string>& patterns);

// Reads and tokenizes the training files (federation.data_fraction of each
// file's records, seeded, when below 1) and the global held-out set
// (config.eval_file, else config.eval_fraction of each source file, else the
// union of the sites' held-out splits), then partitions as above. Prints a
// summary line to `out`.
FleetData load_fleet_data(const SimulationConfig& config, const Tokenizer& tokenizer, std::ostream& out);

// Held-out examples to batches, at most `max_batches` (0: all).
std::vector<data::Batch> held_out_batches(const std::vector<data::Example>& examples,
                                          const data::BatchOptions& options, int64_t max_batches);

}  // namespace cleave::simulate
