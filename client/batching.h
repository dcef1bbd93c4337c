// Token batches for training and evaluation, and llama.cpp's perplexity
// chunks.
//
// Packing: the examples (in epoch order) are concatenated into one stream of
// T tokens and cut into windows of seq_len + 1 tokens that overlap by one
// token, so every target in the stream is used exactly once: an epoch has
// floor((T - 1) / seq_len) rows and the tail of fewer than seq_len targets is
// dropped. The target that crosses from one example's EOS to the next
// example's BOS carries no loss; loss masks are kept.
// Padding: one example per row, truncated to seq_len + 1 tokens, the rest of
// the row filled with pad_token at weight 0; an epoch has one row per example.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client/dataset.h"

namespace cleave::data {

enum class BatchMode { packing, padding };
const char* batch_mode_name(BatchMode mode);  // "packing" | "padding"
BatchMode parse_batch_mode(const std::string& name);  // throws for anything else

struct BatchOptions {
  int64_t batch_size = 8;   // rows per batch
  int64_t seq_len = 256;    // input positions per row
  BatchMode mode = BatchMode::packing;
  uint64_t seed = 0;        // shuffling of examples, per epoch
  int32_t pad_token = 0;    // any valid id: padded positions have weight 0

  void validate() const;    // throws std::invalid_argument naming the field
};

struct Batch {
  int64_t batch_size = 0, seq_len = 0;
  std::vector<int32_t> inputs;   // [batch, seq]
  std::vector<int32_t> targets;  // [batch, seq]: the next token of each input
  std::vector<float> weights;    // [batch, seq]: 1 trained, 0 padding or prompt
  int64_t n_target_tokens = 0;   // positions with weight 1
};

// Rows of one epoch before collation: each an Example of at most
// seq_len + 1 tokens. `order` lists example indices in the epoch's order.
std::vector<Example> pack_rows(const std::vector<Example>& examples,
                               const std::vector<size_t>& order, int64_t seq_len);
std::vector<Example> pad_rows(const std::vector<Example>& examples,
                              const std::vector<size_t>& order, int64_t seq_len);
// Rows (each at most seq_len + 1 tokens) into one batch.
Batch collate(const std::vector<Example>& rows, int64_t seq_len, int32_t pad_token);

// Every row of the data set in file order (no shuffling), batch_size rows per
// batch; the last batch may have fewer rows.
std::vector<Batch> eval_batches(const std::vector<Example>& examples, const BatchOptions& options);

// Endless training batches: the examples are shuffled at the start of every
// epoch (seeded by options.seed and the epoch number), and a batch that
// reaches the end of an epoch continues with the next epoch's first rows, so
// every batch is full.
class BatchStream {
 public:
  BatchStream(std::vector<Example> examples, BatchOptions options);
  Batch next();
  int64_t epoch() const;            // epoch (from 0) of the next row
  int64_t rows_per_epoch() const { return static_cast<int64_t>(rows_.size()); }

 private:
  void start_epoch(int64_t epoch);

  std::vector<Example> examples_;
  BatchOptions options_;
  int64_t epoch_ = 0;
  std::vector<Example> rows_;  // the current epoch's rows, in order
  size_t next_row_ = 0;
};

// Rows in one epoch of `examples` under `options` (the same for every
// epoch's order): packing, floor((T - 1) / seq_len) for the T tokens of the
// stream; padding, one per example.
int64_t rows_per_epoch(const std::vector<Example>& examples, const BatchOptions& options);
// Optimizer steps of batch_size rows that pass over the examples `epochs`
// times: ceil(epochs * rows_per_epoch / batch_size), at least 1.
int64_t steps_for_epochs(const std::vector<Example>& examples, const BatchOptions& options, double epochs);

// The order of the examples in one epoch: a Fisher-Yates shuffle seeded by
// (seed, epoch), the same on every standard library.
std::vector<size_t> epoch_order(size_t n_examples, uint64_t seed, int64_t epoch);

// llama.cpp's llama-perplexity chunks: `all_tokens` is the whole text
// tokenized once with BOS; it is split into floor(size / ctx) non-overlapping
// chunks of ctx tokens (the remainder dropped) and each chunk's first token is
// replaced by BOS. The evaluator scores only the second half of each chunk, as
// llama.cpp does: the logits at positions [ctx/2, ctx-1) predicting tokens
// [ctx/2 + 1, ctx) of the chunk, i.e. ctx - 1 - ctx/2 predictions per chunk
// (see perplexity_first_scored). Throws if there is not one whole chunk.
// (llama-perplexity itself refuses texts of fewer than 2 * ctx tokens.)
std::vector<std::vector<int32_t>> perplexity_chunks(const std::vector<int32_t>& all_tokens,
                                                    int64_t ctx, int32_t bos);
// First position whose logits are scored in a perplexity chunk of ctx tokens.
inline int64_t perplexity_first_scored(int64_t ctx) { return ctx / 2; }

}  // namespace cleave::data
