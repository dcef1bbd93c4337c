#include "audit/audit_run.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <ostream>
#include <stdexcept>

#include "client/dataset.h"
#include "model/llama_model.h"
#include "util/stopwatch.h"

namespace cleave::audit {
namespace {

std::string percent(double rate) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", 100.0 * rate);
  return text;
}

void print_result(const AttackResult& r, std::ostream& log) {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f s", r.seconds);
  log << r.name << ": " << r.recovered << "/" << r.scored << " tokens (" << percent(r.rate()) << "), "
      << seconds << "; " << r.detail << std::endl;
}

// The median L2 norm over every token's activation vector.
double median_norm(const std::vector<at::Tensor>& rows) {
  std::vector<at::Tensor> norms;
  for (const at::Tensor& row : rows) norms.push_back(row.norm(2, {-1}));  // [T]
  return at::cat(norms).median().item<double>();
}

// The token a guess without any activation would say everywhere: the most
// frequent one at positions 1.. of the attacker's public rows.
TokenId most_frequent_token(const std::vector<TokenRow>& rows) {
  std::map<TokenId, int64_t> counts;
  for (const TokenRow& row : rows) {
    for (size_t i = 1; i < row.size(); ++i) ++counts[row[i]];
  }
  TokenId best = 0;
  int64_t best_count = -1;
  for (const auto& [token, count] : counts) {
    if (count > best_count) best = token, best_count = count;
  }
  return best;
}

// The attacker's training set: public rows through the same blocks and the
// same channel, with noise draws of its own. Features [N, dim], labels [N].
std::pair<at::Tensor, at::Tensor> public_features(const LlamaModel& model, const LinearAdapters* adapters,
                                                  const std::vector<TokenRow>& public_rows,
                                                  const AuditOptions& options) {
  SmashedChannel attacker_channel = options.channel;
  attacker_channel.protection.noise_seed = options.learned.seed * 1000003 + 17;  // never the site's draws
  SiteSender simulated(attacker_channel);
  std::vector<at::Tensor> features;
  std::vector<int64_t> labels;
  const std::vector<at::Tensor> smashed =
      bottom_activations(model, adapters, public_rows, options.channel.cut_layer);
  for (size_t r = 0; r < public_rows.size(); ++r) {
    features.push_back(simulated.send(smashed[r]));  // [T, dim]
    labels.insert(labels.end(), public_rows[r].begin(), public_rows[r].end());
  }
  return {at::cat(features, 0), at::tensor(labels, at::kLong)};
}

AttackResult white_box_attack(const std::string& name, const LlamaModel& model,
                              const LinearAdapters* adapters, const SmashedChannel& channel,
                              const WhiteBoxOptions& options, const std::vector<TokenRow>& site_rows,
                              const std::vector<at::Tensor>& observed, std::ostream& log) {
  const auto start = SteadyTime::now();
  WhiteBoxInversion white_box(model, adapters, channel, options);
  int64_t next_report = 0;
  const std::vector<TokenRow> inverted = white_box.invert(observed, [&](int64_t done, int64_t total) {
    if (done < next_report || done == total) return;
    char line[96];
    std::snprintf(line, sizeof line, "  white-box: %lld/%lld positions, %.1f s", static_cast<long long>(done),
                  static_cast<long long>(total), seconds_since(start));
    if (next_report > 0) log << line << std::endl;
    next_report += total / 4;
  });
  auto count = [](int64_t n) { return n == 0 ? std::string("every token") : std::to_string(n); };
  char mean[48];
  std::snprintf(mean, sizeof mean, "%.1f", white_box.mean_candidates_verified());
  AttackResult result{name, std::string(options.language_prior ? "highest posterior" : "nearest") + " of " +
                                mean +
                                " candidates verified per position after the recovered prefix (first the " +
                                count(options.candidates) + " nearest alone and the base model's " +
                                std::to_string(options.language_candidates) + " likeliest, widening up to " +
                                count(options.max_candidates) + " while none fits)"};
  result.scored = count_scored(site_rows);
  result.recovered = count_recovered(site_rows, inverted);
  result.seconds = seconds_since(start);
  print_result(result, log);
  return result;
}

AttackResult learned_attack(const LlamaModel& model, const LinearAdapters* adapters,
                            const std::vector<TokenRow>& public_rows, const AuditOptions& options,
                            const std::vector<TokenRow>& site_rows, const std::vector<at::Tensor>& observed,
                            std::ostream& log) {
  const auto start = SteadyTime::now();
  const auto [features, labels] = public_features(model, adapters, public_rows, options);
  log << "  learned: " << features.size(0) << " public activations, training "
      << (options.learned.hidden > 0 ? "an MLP (hidden " + std::to_string(options.learned.hidden) + ")"
                                     : std::string("a linear softmax model"))
      << " for " << options.learned.steps << " steps" << std::endl;
  const LearnedInversion learned = LearnedInversion::train(
      features, labels, model.config().vocab_size, options.learned,
      [&](int64_t step, int64_t steps, double loss) {
        char line[96];
        std::snprintf(line, sizeof line, "  learned: step %lld/%lld, loss %.3f, %.1f s",
                      static_cast<long long>(step), static_cast<long long>(steps), loss,
                      seconds_since(start));
        log << line << std::endl;
      });
  std::vector<TokenRow> predicted;
  for (const at::Tensor& row : observed) predicted.push_back(learned.predict(row));
  AttackResult result{"learned inversion", "trained on " + std::to_string(features.size(0)) +
                                               " public activations through the same channel"};
  result.scored = count_scored(site_rows);
  result.recovered = count_recovered(site_rows, predicted);
  result.seconds = seconds_since(start);
  print_result(result, log);
  return result;
}

}  // namespace

void AuditOptions::validate(int64_t n_layers) const {
  channel.validate(n_layers);
  white_box.validate();
  learned.validate();
}

std::vector<TokenRow> rows_from_examples(const std::vector<data::Example>& examples, int64_t seq_len,
                                         int64_t max_tokens) {
  if (seq_len < 2)
    throw std::invalid_argument("seq_len must be >= 2 (BOS and a token), got " + std::to_string(seq_len));
  std::vector<TokenRow> rows;
  int64_t taken = 0;
  for (const data::Example& example : examples) {
    if (taken >= max_tokens) break;
    const int64_t length =
        std::min<int64_t>({static_cast<int64_t>(example.tokens.size()), seq_len, max_tokens - taken + 1});
    if (length < 2) continue;
    rows.emplace_back(example.tokens.begin(), example.tokens.begin() + length);
    taken += length - 1;
  }
  return rows;
}

int64_t count_scored(const std::vector<TokenRow>& truth) {
  int64_t n = 0;
  for (const TokenRow& row : truth) n += std::max<int64_t>(0, static_cast<int64_t>(row.size()) - 1);
  return n;
}

int64_t count_recovered(const std::vector<TokenRow>& truth, const std::vector<TokenRow>& guess) {
  if (truth.size() != guess.size()) throw std::invalid_argument("count_recovered: row counts differ");
  int64_t n = 0;
  for (size_t r = 0; r < truth.size(); ++r) {
    for (size_t i = 1; i < truth[r].size() && i < guess[r].size(); ++i) n += truth[r][i] == guess[r][i];
  }
  return n;
}

const AttackResult& AuditReport::best() const {
  if (attacks.empty()) throw std::logic_error("AuditReport::best: no attack ran");
  const AttackResult* best = &attacks.front();
  for (const AttackResult& a : attacks) {
    if (a.rate() > best->rate()) best = &a;
  }
  return *best;
}

AuditReport run_audit(const LlamaModel& model, const LinearAdapters* adapters,
                      const std::vector<TokenRow>& site_rows, const std::vector<TokenRow>& public_rows,
                      const AuditOptions& options, std::ostream& log) {
  options.validate(model.n_layers());
  AuditReport report;
  report.rows = static_cast<int64_t>(site_rows.size());
  report.scored = count_scored(site_rows);
  if (report.scored == 0) throw std::invalid_argument("the site's data gave no tokens to audit");
  log << "site: " << report.rows << " rows, " << report.scored
      << " tokens to recover; channel: " << options.channel.describe() << std::endl;

  // The site's side: bottom blocks, then its protection and codec.
  const std::vector<at::Tensor> smashed =
      bottom_activations(model, adapters, site_rows, options.channel.cut_layer);
  report.median_norm = median_norm(smashed);
  SiteSender site(options.channel);
  std::vector<at::Tensor> observed;  // one [T, dim] per row: what the split server decodes
  for (const at::Tensor& row : smashed) observed.push_back(site.send(row));
  char norm_line[96];
  std::snprintf(norm_line, sizeof norm_line, "smashed token L2 norm before the channel: median %.3g",
                report.median_norm);
  log << norm_line << std::endl;

  if (public_rows.empty()) {
    report.baseline_name = "uniform guess over " + std::to_string(model.config().vocab_size) + " tokens";
    report.baseline_rate = 1.0 / static_cast<double>(model.config().vocab_size);
  } else {
    const TokenId guess = most_frequent_token(public_rows);
    std::vector<TokenRow> constant;
    for (const TokenRow& row : site_rows) constant.emplace_back(row.size(), guess);
    report.baseline_name = "always the most frequent public token (id " + std::to_string(guess) + ")";
    report.baseline_rate = static_cast<double>(count_recovered(site_rows, constant)) / report.scored;
  }
  log << "baseline, " << report.baseline_name << ": " << percent(report.baseline_rate) << std::endl;

  const auto start = SteadyTime::now();
  WhiteBoxInversion lookup_table(model, adapters, options.channel, options.white_box);
  AttackResult lookup{"context-free lookup",
                      "each position's nearest of the vocabulary's activations alone at position 0"};
  lookup.scored = report.scored;
  lookup.recovered = count_recovered(site_rows, lookup_table.invert_without_context(observed));
  lookup.seconds = seconds_since(start);
  print_result(lookup, log);
  report.attacks.push_back(lookup);

  WhiteBoxOptions nearest = options.white_box;
  nearest.language_prior = false;
  report.attacks.push_back(white_box_attack("white-box inversion", model, adapters, options.channel, nearest,
                                            site_rows, observed, log));
  if (options.channel.protection.noise > 0) {
    WhiteBoxOptions posterior = options.white_box;
    posterior.language_prior = true;
    report.attacks.push_back(white_box_attack("white-box inversion with the base model as prior", model,
                                              adapters, options.channel, posterior, site_rows, observed,
                                              log));
  }

  if (public_rows.empty()) {
    log << "learned inversion: skipped (no public text: give --public FILE)" << std::endl;
  } else {
    report.attacks.push_back(learned_attack(model, adapters, public_rows, options, site_rows, observed, log));
  }
  return report;
}

}  // namespace cleave::audit
