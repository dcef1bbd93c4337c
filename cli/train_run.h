// The whole of `cleave train` as a library call (the demo runs it too):
// model, data, adapters, training with held-out perplexity before, during
// and after, checkpoints, the adapter file, metrics.jsonl and a summary.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "cli/config.h"
#include "client/dataset.h"
#include "client/trainer.h"

namespace cleave::cli {

struct TrainRunResult {
  std::optional<double> perplexity_before;  // absent without held-out data
  std::optional<double> perplexity_after;
  TrainReport report;
  std::string adapter_path;                 // <output.dir>/adapter.gguf
};

// Writes into config.output_dir: config.resolved.yaml, metrics.jsonl,
// checkpoint-<step>.gguf every train.checkpoint_every steps, adapter.gguf.
// Progress goes to `out`. Throws on any failure (bad model, bad data).
TrainRunResult run_training(const RunConfig& config, std::ostream& out);

// Holds out round(fraction * n) records (at least one when fraction > 0 and
// there are two or more), chosen by a shuffle seeded by `seed`; both parts
// keep file order. Returns the held-out records and removes them from `records`.
std::vector<data::Record> split_off_eval(std::vector<data::Record>& records, double fraction,
                                         uint64_t seed);

}  // namespace cleave::cli
