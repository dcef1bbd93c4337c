#include "simulate/fleet_data.h"

#include <glob.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>
#include <stdexcept>

#include "client/batching.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace cleave::simulate {
namespace {

// `count` of `n` indices chosen by a seeded shuffle: round(fraction * n),
// at least one when fraction > 0 and n >= 2, never all of them.
std::vector<bool> held_out_mask(size_t n, double fraction, uint64_t seed) {
  std::vector<bool> held(n, false);
  if (fraction <= 0 || n < 2) return held;
  size_t count = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
  count = std::clamp<size_t>(count, 1, n - 1);
  // Epoch -1 keeps this draw apart from the training epochs' shuffles.
  const std::vector<size_t> order = data::epoch_order(n, seed, -1);
  for (size_t i = 0; i < count; ++i) held[order[i]] = true;
  return held;
}

uint64_t mix(uint64_t seed, uint64_t salt) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (salt + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string site_name(size_t index, size_t count) {
  const int width = count > 1000 ? 5 : count > 100 ? 4 : 3;
  char buf[32];
  std::snprintf(buf, sizeof buf, "site-%0*zu", width, index);
  return buf;
}

// A client id from a file path: its stem, with anything but [A-Za-z0-9._-] as
// '_', starting with a letter or digit and at most 64 characters, so that it
// can name the site's certificate (secure::validate_node_name).
std::string group_name(const std::string& group) {
  std::string stem = std::filesystem::path(group).stem().string();
  if (stem.empty()) stem = group;
  for (char& c : stem) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (stem.empty() || !std::isalnum(static_cast<unsigned char>(stem[0]))) stem = "site-" + stem;
  return stem.substr(0, 64);
}

void shuffle_in_place(std::vector<data::Example>& examples, uint64_t seed) {
  const std::vector<size_t> order = data::epoch_order(examples.size(), seed, -2);
  std::vector<data::Example> shuffled;
  shuffled.reserve(examples.size());
  for (size_t i : order) shuffled.push_back(std::move(examples[i]));
  examples = std::move(shuffled);
}

}  // namespace

std::vector<data::Example> FleetData::gather(const std::vector<size_t>& indices) const {
  std::vector<data::Example> out;
  out.reserve(indices.size());
  for (size_t i : indices) out.push_back(examples.at(i));
  return out;
}

std::vector<data::Example> FleetData::all_train() const {
  std::vector<data::Example> out;
  out.reserve(train_count());
  for (const SiteData& site : sites) {
    for (size_t i : site.train) out.push_back(examples[i]);
  }
  return out;
}

size_t FleetData::train_count() const {
  size_t n = 0;
  for (const SiteData& site : sites) n += site.train.size();
  return n;
}

FleetData partition_fleet(std::vector<data::Example> examples, const std::vector<std::string>& groups,
                          std::vector<data::Example> global_eval, const FleetOptions& options, uint64_t seed) {
  options.validate();
  data::PartitionSpec spec;
  spec.kind = options.partition;
  spec.n_clients = static_cast<size_t>(options.clients);
  spec.alpha = options.alpha;
  spec.shares = options.shares;
  spec.exponent = options.exponent;
  spec.seed = seed;
  if (spec.kind == data::PartitionKind::size_skew && spec.shares.empty()) {
    spec.shares = data::power_law_shares(spec.n_clients, spec.exponent);
  }
  const bool needs_groups = spec.kind == data::PartitionKind::dirichlet || spec.kind == data::PartitionKind::natural;
  if (needs_groups && groups.size() != examples.size()) {
    throw std::invalid_argument("the " + std::string(data::partition_kind_name(spec.kind)) + " partition needs one " +
                                "label per example (" + std::to_string(examples.size()) + " examples, " +
                                std::to_string(groups.size()) + " labels)");
  }
  const data::ClientIndices clients = data::partition(spec, examples.size(), needs_groups ? groups : std::vector<std::string>{});
  std::vector<std::string> names;
  if (spec.kind == data::PartitionKind::natural) {
    for (const std::string& group : data::distinct_groups(groups)) names.push_back(group_name(group));
  }

  FleetData fleet;
  fleet.examples = std::move(examples);
  const bool pool_global = global_eval.empty();
  for (size_t c = 0; c < clients.size(); ++c) {
    SiteData site;
    site.id = c < names.size() ? names[c] : site_name(c, clients.size());
    const std::vector<size_t>& indices = clients[c];
    const std::vector<bool> held = held_out_mask(indices.size(), options.client_eval_fraction, mix(seed, c));
    std::vector<size_t> trainable;
    for (size_t k = 0; k < indices.size(); ++k) (held[k] ? site.eval : trainable).push_back(indices[k]);
    const std::vector<bool> validation =
        held_out_mask(trainable.size(), options.validation_fraction, mix(seed, c + 0x7a1d));
    for (size_t k = 0; k < trainable.size(); ++k) {
      (validation[k] ? site.validation : site.train).push_back(trainable[k]);
    }
    if (site.train.empty()) {
      throw std::invalid_argument("site " + site.id + " has no training examples (" + std::to_string(indices.size()) +
                                  " in all): use fewer federation.clients, a larger alpha, or more data");
    }
    if (pool_global) {
      for (size_t i : site.eval) global_eval.push_back(fleet.examples[i]);
    }
    for (size_t i : site.validation) fleet.validation.push_back(fleet.examples[i]);
    fleet.sites.push_back(std::move(site));
  }
  // Capped evaluations score the first batches: mix the sources first.
  shuffle_in_place(global_eval, seed);
  fleet.global_eval = std::move(global_eval);
  shuffle_in_place(fleet.validation, mix(seed, 0x7a1d));
  return fleet;
}

std::vector<std::string> expand_train_files(const std::vector<std::string>& patterns) {
  std::vector<std::string> files;
  for (const std::string& pattern : patterns) {
    if (pattern.find_first_of("*?[") == std::string::npos) {
      files.push_back(pattern);
      continue;
    }
    glob_t matches{};
    const int status = ::glob(pattern.c_str(), 0, nullptr, &matches);
    const std::unique_ptr<glob_t, void (*)(glob_t*)> owner(&matches, ::globfree);
    if (status == GLOB_NOMATCH) {
      throw std::invalid_argument("data.train: the pattern " + pattern + " matches no file: check the path");
    }
    if (status != 0) throw std::runtime_error("data.train: cannot expand " + pattern);
    std::vector<std::string> found(matches.gl_pathv, matches.gl_pathv + matches.gl_pathc);
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

FleetData load_fleet_data(const SimulationConfig& config, const Tokenizer& tokenizer, std::ostream& out) {
  const std::vector<std::string> files = expand_train_files(config.train_files);
  const std::string& label = config.fleet.label_field;
  data::ReadOptions read;
  if (label != "source") read.label_field = label;
  std::vector<data::Record> records = data::read_records(files, read);
  if (config.fleet.data_fraction < 1) {
    // The same share of every source file, so the sites keep their proportions.
    std::map<std::string, std::vector<size_t>> by_source;
    for (size_t i = 0; i < records.size(); ++i) by_source[records[i].source].push_back(i);
    std::vector<bool> used(records.size(), false);
    uint64_t salt = 5000;
    for (const auto& [source, indices] : by_source) {
      const std::vector<bool> mask = held_out_mask(indices.size(), config.fleet.data_fraction, mix(config.seed, salt++));
      for (size_t k = 0; k < indices.size(); ++k) used[indices[k]] = mask[k] || indices.size() == 1;
    }
    std::vector<data::Record> kept;
    for (size_t i = 0; i < records.size(); ++i) {
      if (used[i]) kept.push_back(std::move(records[i]));
    }
    out << "data: federation.data_fraction " << config.fleet.data_fraction << ": " << kept.size() << " of "
        << records.size() << " records used\n";
    records = std::move(kept);
  }

  std::vector<data::Record> held;
  if (!config.eval_file.empty()) {
    held = data::read_records(config.eval_file);
  } else if (config.eval_fraction > 0) {
    // The same share of every source file, so each site's distribution is in it.
    std::map<std::string, std::vector<size_t>> by_source;
    for (size_t i = 0; i < records.size(); ++i) by_source[records[i].source].push_back(i);
    std::vector<bool> is_held(records.size(), false);
    uint64_t salt = 1000;
    for (const auto& [source, indices] : by_source) {
      const std::vector<bool> mask = held_out_mask(indices.size(), config.eval_fraction, mix(config.seed, salt++));
      for (size_t k = 0; k < indices.size(); ++k) is_held[indices[k]] = mask[k];
    }
    std::vector<data::Record> kept;
    for (size_t i = 0; i < records.size(); ++i) (is_held[i] ? held : kept).push_back(std::move(records[i]));
    records = std::move(kept);
  }
  std::vector<std::string> groups;
  groups.reserve(records.size());
  for (const data::Record& r : records) groups.push_back(label == "source" ? r.source : r.label);
  const std::optional<ChatFormat> chat = data::choose_chat_format(config.chat_template, tokenizer, config.model);
  if (chat) out << "data: prompts and completions in the " << chat_format_name(*chat) << " chat format\n";
  std::vector<data::Example> examples = data::tokenize_records(tokenizer, records, chat);
  std::vector<data::Example> global_eval = data::tokenize_records(tokenizer, held, chat);
  FleetData fleet = partition_fleet(std::move(examples), groups, std::move(global_eval), config.fleet, config.seed);
  out << "data: " << files.size() << " files, " << fleet.train_count() << " training examples over "
      << fleet.sites.size() << " sites (" << data::partition_kind_name(config.fleet.partition) << "), "
      << fleet.global_eval.size() << " global held-out examples"
      << (fleet.validation.empty() ? std::string() : ", " + std::to_string(fleet.validation.size()) +
                                                         " validation examples (to stop and tune)")
      << "\n";
  return fleet;
}

std::vector<data::Batch> held_out_batches(const std::vector<data::Example>& examples,
                                          const data::BatchOptions& options, int64_t max_batches) {
  if (examples.empty()) return {};
  std::vector<data::Batch> batches = data::eval_batches(examples, options);
  if (max_batches > 0 && static_cast<int64_t>(batches.size()) > max_batches) {
    batches.resize(static_cast<size_t>(max_batches));
  }
  return batches;
}

}  // namespace cleave::simulate
