// `cleave audit`'s run: the site's rows go through its bottom blocks and its
// channel, and each attack tries to recover them from what the split server
// receives. One place that plays both ends, so the command, the tests and
// the experiment measure the same thing.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "audit/learned_inversion.h"
#include "audit/smashed_channel.h"
#include "audit/white_box_inversion.h"

namespace cleave::data {
struct Example;
}

namespace cleave::audit {

struct AuditOptions {
  SmashedChannel channel;
  WhiteBoxOptions white_box;       // language_prior aside: run_audit runs both decisions
  LearnedInversionOptions learned;  // its seed also seeds the attacker's own noise draws

  void validate(int64_t n_layers) const;  // throws std::invalid_argument naming the field
};

// Rows as a site trains on them: each example's first `seq_len` tokens (BOS
// first), in order, until `max_tokens` tokens after the BOS have been taken
// (the last row cut short to fit). Fewer when the examples run out.
std::vector<TokenRow> rows_from_examples(const std::vector<data::Example>& examples, int64_t seq_len,
                                         int64_t max_tokens);

struct AttackResult {
  std::string name;       // "white-box inversion"
  std::string detail;     // how it ran, for the printout
  int64_t recovered = 0;  // scored positions where it found the site's token
  int64_t scored = 0;
  double seconds = 0;

  double rate() const {
    return scored > 0 ? static_cast<double>(recovered) / static_cast<double>(scored) : 0;
  }
};

struct AuditReport {
  int64_t rows = 0;
  int64_t scored = 0;         // positions 1.. of every row (position 0 is BOS in every row)
  double median_norm = 0;     // of the site's token activations before the channel
  std::string baseline_name;  // what a guess without the activations gets
  double baseline_rate = 0;
  std::vector<AttackResult> attacks;

  const AttackResult& best() const;  // the highest rate (the first on a tie)
};

// Runs every attack on `site_rows`: the context-free lookup, the white-box
// inversion and, when `public_rows` is not empty, the learned inversion
// trained on them. `adapters` (or null for the base) are the site's, and
// known to the attacker. Progress and per-attack results go to `log`.
AuditReport run_audit(const LlamaModel& model, const LinearAdapters* adapters,
                      const std::vector<TokenRow>& site_rows, const std::vector<TokenRow>& public_rows,
                      const AuditOptions& options, std::ostream& log);

// How many of `truth`'s positions 1.. `guess` has right (rows paired), and
// how many there are.
int64_t count_recovered(const std::vector<TokenRow>& truth, const std::vector<TokenRow>& guess);
int64_t count_scored(const std::vector<TokenRow>& truth);

}  // namespace cleave::audit
