#include "client/batching.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "client/shuffle.h"

namespace cleave::data {

const char* batch_mode_name(BatchMode mode) {
  return mode == BatchMode::packing ? "packing" : "padding";
}

BatchMode parse_batch_mode(const std::string& name) {
  if (name == "packing") return BatchMode::packing;
  if (name == "padding") return BatchMode::padding;
  throw std::invalid_argument("unknown batch mode \"" + name + "\": use packing or padding");
}

void BatchOptions::validate() const {
  if (batch_size <= 0) {
    throw std::invalid_argument("batch_size must be positive, got " + std::to_string(batch_size));
  }
  if (seq_len <= 0) {
    throw std::invalid_argument("seq_len must be positive, got " + std::to_string(seq_len));
  }
  if (pad_token < 0) {
    throw std::invalid_argument("pad_token must be a valid token id, got " +
                                std::to_string(pad_token));
  }
}

namespace {
void check_example(const Example& example, size_t index) {
  const size_t expected = example.tokens.empty() ? 0 : example.tokens.size() - 1;
  if (example.loss_mask.size() != expected) {
    throw std::invalid_argument("example " + std::to_string(index) + " has " +
                                std::to_string(example.tokens.size()) + " tokens but " +
                                std::to_string(example.loss_mask.size()) +
                                " loss mask entries (expected one per target, tokens - 1)");
  }
}
}  // namespace

std::vector<Example> pack_rows(const std::vector<Example>& examples,
                               const std::vector<size_t>& order, int64_t seq_len) {
  // The stream: tokens of all examples, and the weight of each target
  // stream[j] -> stream[j + 1].
  Example stream;
  for (const size_t index : order) {
    const Example& example = examples.at(index);
    check_example(example, index);
    if (example.tokens.empty()) continue;
    if (!stream.tokens.empty()) stream.loss_mask.push_back(0);  // EOS -> next BOS
    stream.tokens.insert(stream.tokens.end(), example.tokens.begin(), example.tokens.end());
    stream.loss_mask.insert(stream.loss_mask.end(), example.loss_mask.begin(),
                            example.loss_mask.end());
  }
  const int64_t n_targets = static_cast<int64_t>(stream.tokens.size()) - 1;
  const int64_t n_rows = n_targets > 0 ? n_targets / seq_len : 0;
  std::vector<Example> rows(static_cast<size_t>(n_rows));
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto start = static_cast<std::ptrdiff_t>(r * seq_len);
    rows[r].tokens.assign(stream.tokens.begin() + start,
                          stream.tokens.begin() + start + seq_len + 1);
    rows[r].loss_mask.assign(stream.loss_mask.begin() + start,
                             stream.loss_mask.begin() + start + seq_len);
  }
  return rows;
}

std::vector<Example> pad_rows(const std::vector<Example>& examples,
                              const std::vector<size_t>& order, int64_t seq_len) {
  std::vector<Example> rows;
  rows.reserve(order.size());
  for (const size_t index : order) {
    const Example& example = examples.at(index);
    check_example(example, index);
    Example row;
    const size_t n_tokens = std::min(example.tokens.size(), static_cast<size_t>(seq_len) + 1);
    row.tokens.assign(example.tokens.begin(), example.tokens.begin() + n_tokens);
    row.loss_mask.assign(example.loss_mask.begin(),
                         example.loss_mask.begin() + (n_tokens > 0 ? n_tokens - 1 : 0));
    rows.push_back(std::move(row));
  }
  return rows;
}

Batch collate(const std::vector<Example>& rows, int64_t seq_len, int32_t pad_token) {
  Batch batch;
  batch.batch_size = static_cast<int64_t>(rows.size());
  batch.seq_len = seq_len;
  const size_t size = rows.size() * static_cast<size_t>(seq_len);
  batch.inputs.assign(size, pad_token);
  batch.targets.assign(size, pad_token);
  batch.weights.assign(size, 0.0f);
  for (size_t r = 0; r < rows.size(); ++r) {
    const Example& row = rows[r];
    if (row.tokens.size() > static_cast<size_t>(seq_len) + 1) {
      throw std::invalid_argument("collate: a row of " + std::to_string(row.tokens.size()) +
                                  " tokens does not fit seq_len " + std::to_string(seq_len));
    }
    if (row.tokens.size() > 1 && row.loss_mask.size() != row.tokens.size() - 1) {
      throw std::invalid_argument("collate: a row of " + std::to_string(row.tokens.size()) +
                                  " tokens has a loss mask of " +
                                  std::to_string(row.loss_mask.size()) + " entries");
    }
    const size_t n_positions = row.tokens.empty() ? 0 : row.tokens.size() - 1;
    const size_t offset = r * static_cast<size_t>(seq_len);
    for (size_t i = 0; i < n_positions; ++i) {
      batch.inputs[offset + i] = row.tokens[i];
      batch.targets[offset + i] = row.tokens[i + 1];
      const bool trained = row.loss_mask[i] != 0;
      batch.weights[offset + i] = trained ? 1.0f : 0.0f;
      batch.n_target_tokens += trained;
    }
  }
  return batch;
}

namespace {

std::vector<Example> make_rows(const std::vector<Example>& examples,
                               const std::vector<size_t>& order, const BatchOptions& options) {
  return options.mode == BatchMode::packing ? pack_rows(examples, order, options.seq_len)
                                            : pad_rows(examples, order, options.seq_len);
}

int64_t total_tokens(const std::vector<Example>& examples) {
  int64_t total = 0;
  for (const Example& example : examples) total += static_cast<int64_t>(example.tokens.size());
  return total;
}

void require_rows(const std::vector<Example>& rows, const std::vector<Example>& examples,
                  const BatchOptions& options) {
  if (examples.empty()) throw std::invalid_argument("no examples to make batches from");
  if (rows.empty()) {
    throw std::invalid_argument(
        "the data set has " + std::to_string(total_tokens(examples)) +
        " tokens, fewer than seq_len + 1 = " + std::to_string(options.seq_len + 1) +
        " needed for one packed row: lower seq_len or use padding");
  }
}

}  // namespace

std::vector<Batch> eval_batches(const std::vector<Example>& examples,
                                const BatchOptions& options) {
  options.validate();
  std::vector<size_t> order(examples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const std::vector<Example> rows = make_rows(examples, order, options);
  require_rows(rows, examples, options);
  std::vector<Batch> batches;
  const auto batch_size = static_cast<size_t>(options.batch_size);
  for (size_t start = 0; start < rows.size(); start += batch_size) {
    const size_t end = std::min(rows.size(), start + batch_size);
    const std::vector<Example> batch_rows(rows.begin() + start, rows.begin() + end);
    batches.push_back(collate(batch_rows, options.seq_len, options.pad_token));
  }
  return batches;
}

std::vector<size_t> epoch_order(size_t n_examples, uint64_t seed, int64_t epoch) {
  Rng rng = seeded_rng(seed, static_cast<uint64_t>(epoch));
  return random_permutation(n_examples, rng);
}

int64_t rows_per_epoch(const std::vector<Example>& examples, const BatchOptions& options) {
  if (options.mode == BatchMode::padding) return static_cast<int64_t>(examples.size());
  // pack_rows' stream: every token of every example, one EOS -> BOS target
  // between examples carrying no loss, so T tokens give T - 1 targets.
  const int64_t n_targets = total_tokens(examples) - 1;
  return n_targets > 0 ? n_targets / options.seq_len : 0;
}

int64_t steps_for_epochs(const std::vector<Example>& examples, const BatchOptions& options, double epochs) {
  if (!(epochs > 0)) throw std::invalid_argument("epochs must be > 0, got " + std::to_string(epochs));
  const double rows = epochs * static_cast<double>(rows_per_epoch(examples, options));
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(rows / static_cast<double>(options.batch_size))));
}

BatchStream::BatchStream(std::vector<Example> examples, BatchOptions options)
    : examples_(std::move(examples)), options_(options) {
  options_.validate();
  start_epoch(0);
  require_rows(rows_, examples_, options_);
}

void BatchStream::start_epoch(int64_t epoch) {
  epoch_ = epoch;
  rows_ = make_rows(examples_, epoch_order(examples_.size(), options_.seed, epoch), options_);
  next_row_ = 0;
}

int64_t BatchStream::epoch() const { return next_row_ < rows_.size() ? epoch_ : epoch_ + 1; }

Batch BatchStream::next() {
  std::vector<Example> batch_rows;
  batch_rows.reserve(static_cast<size_t>(options_.batch_size));
  while (static_cast<int64_t>(batch_rows.size()) < options_.batch_size) {
    if (next_row_ == rows_.size()) start_epoch(epoch_ + 1);
    batch_rows.push_back(rows_[next_row_++]);
  }
  return collate(batch_rows, options_.seq_len, options_.pad_token);
}

std::vector<std::vector<int32_t>> perplexity_chunks(const std::vector<int32_t>& all_tokens,
                                                    int64_t ctx, int32_t bos) {
  if (ctx < 2) throw std::invalid_argument("perplexity ctx must be at least 2, got " +
                                           std::to_string(ctx));
  const int64_t n_chunks = static_cast<int64_t>(all_tokens.size()) / ctx;
  if (n_chunks == 0) {
    throw std::invalid_argument("the text has " + std::to_string(all_tokens.size()) +
                                " tokens, fewer than one chunk of ctx = " + std::to_string(ctx) +
                                ": lower --ctx or use a longer text");
  }
  std::vector<std::vector<int32_t>> chunks(static_cast<size_t>(n_chunks));
  for (int64_t c = 0; c < n_chunks; ++c) {
    const auto start = all_tokens.begin() + static_cast<std::ptrdiff_t>(c * ctx);
    chunks[c].assign(start, start + ctx);
    chunks[c][0] = bos;
  }
  return chunks;
}

}  // namespace cleave::data
