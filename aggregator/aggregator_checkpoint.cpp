#include "aggregator/aggregator_checkpoint.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <unistd.h>

#include "aggregator/fault_point.h"
#include "aggregator/strategy_state_file.h"
#include "util/atomic_file.h"
#include "util/json.h"

namespace cleave::aggregator {
namespace fs = std::filesystem;
namespace {

std::string round_tag(uint32_t round) {
  char tag[16];
  std::snprintf(tag, sizeof tag, "%06u", round);
  return tag;
}

std::string required_string(const json::Value& state, const char* key, const std::string& path) {
  const json::Value* value = state.find(key);
  if (!value || !value->is_string()) throw std::runtime_error(path + ": missing string \"" + key + "\"");
  return value->as_string();
}

}  // namespace

std::string checkpoint_adapters_file(uint32_t round) { return "adapters-round-" + round_tag(round) + ".gguf"; }

void save_checkpoint(const std::string& dir, const AggregatorCheckpoint& checkpoint, int64_t keep_rounds) {
  if (checkpoint.completed_rounds == 0)
    throw std::invalid_argument("save_checkpoint: no round is completed yet; nothing to checkpoint");
  if (keep_rounds < 1) throw std::invalid_argument("save_checkpoint: keep_rounds must be >= 1");
  fs::create_directories(dir);
  const uint32_t round = checkpoint.completed_rounds - 1;
  const std::string tag = round_tag(round);
  const std::string adapters_file = checkpoint_adapters_file(round);
  const std::string state_file = checkpoint.strategy_state.empty() ? "" : "strategy-round-" + tag + ".safetensors";
  save_global_adapters(checkpoint.global, dir + "/" + adapters_file,
                       {{"cleave.round", std::to_string(checkpoint.completed_rounds)}});
  if (!state_file.empty()) {
    save_strategy_state(checkpoint.strategy_state, dir + "/" + state_file, checkpoint.completed_rounds);
  }
  // The new round's files are on disk, state.json still names the last round.
  fault_point("aggregator.checkpoint.adapters_written");

  json::Value state = json::Value::object();
  state.set("format", kStateFormat);
  state.set("version", kStateVersion);
  state.set("completed_rounds", static_cast<int64_t>(checkpoint.completed_rounds));
  state.set("strategy", checkpoint.strategy);
  state.set("seed", std::to_string(checkpoint.seed));   // a string: JSON numbers lose 64-bit precision
  state.set("sampling", "splitmix64(seed, round); next round " + std::to_string(checkpoint.completed_rounds));
  state.set("adapters_file", adapters_file);
  state.set("strategy_state_file", state_file);
  json::Value registered = json::Value::object();
  for (const auto& [id, num_samples] : checkpoint.registered) registered.set(id, num_samples);
  state.set("registered", std::move(registered));
  json::Value site_lora = json::Value::object();
  for (const auto& [id, lora] : checkpoint.site_lora) {
    json::Value entry = json::Value::object();
    entry.set("rank", lora.rank);
    entry.set("alpha", lora.alpha);
    site_lora.set(id, std::move(entry));
  }
  state.set("site_lora", std::move(site_lora));
  json::Value last_sites = json::Value::array();
  for (const std::string& id : checkpoint.last_round_sites) last_sites.push_back(id);
  state.set("last_round_sites", std::move(last_sites));
  if (!checkpoint.last_round_weights.empty()) {
    json::Value weights = json::Value::array();
    for (double weight : checkpoint.last_round_weights) weights.push_back(weight);
    state.set("last_round_weights", std::move(weights));
  }
  if (!checkpoint.dp_rdp.empty()) {
    json::Value rdp = json::Value::array();
    for (double value : checkpoint.dp_rdp) rdp.push_back(value);
    state.set("dp_rdp", std::move(rdp));
    state.set("dp_rounds", checkpoint.dp_rounds);
  }
  write_file_atomically(dir + "/state.json", state.dump(2) + "\n");

  // The commit is done: drop the adapters of rounds before the last
  // keep_rounds, and every strategy state but this round's. Round numbers
  // come from the names, so files of a later run (a resumed one that went
  // further and was rolled back by hand) are left alone.
  const int64_t oldest_kept = static_cast<int64_t>(round) - keep_rounds + 1;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    bool stale = false;
    unsigned file_round = 0;
    char suffix[32] = {};
    if (std::sscanf(name.c_str(), "adapters-round-%u.%31s", &file_round, suffix) == 2 &&
        std::string(suffix) == "gguf") {
      stale = static_cast<int64_t>(file_round) < oldest_kept;
    } else if (name.rfind("strategy-round-", 0) == 0) {
      stale = name != state_file;
    }
    if (stale) {
      std::error_code ignored;
      fs::remove(entry.path(), ignored);
    }
  }
}

std::optional<AggregatorCheckpoint> load_checkpoint(const std::string& dir) {
  const std::string path = dir + "/state.json";
  if (!fs::exists(path)) return std::nullopt;
  const json::Value state = json::parse_file(path);
  const std::string format = state.is_object() ? required_string(state, "format", path) : "";
  if (format != kStateFormat) {
    throw std::runtime_error(path + ": format is '" + format + "', expected '" + kStateFormat +
                             "': is this an aggregator checkpoint directory?");
  }
  const int64_t version = state.at("version").as_int();
  if (version != kStateVersion) {
    throw std::runtime_error(path + ": version " + std::to_string(version) + ", expected " +
                             std::to_string(kStateVersion) + ": written by another cleave");
  }
  AggregatorCheckpoint checkpoint;
  const int64_t completed = state.at("completed_rounds").as_int();
  if (completed < 0 || completed > UINT32_MAX) throw std::runtime_error(path + ": completed_rounds out of range");
  checkpoint.completed_rounds = static_cast<uint32_t>(completed);
  checkpoint.strategy = required_string(state, "strategy", path);
  try {
    checkpoint.seed = std::stoull(required_string(state, "seed", path));
  } catch (const std::logic_error&) {
    throw std::runtime_error(path + ": \"seed\" is not an unsigned integer");
  }
  checkpoint.global = load_global_adapters(dir + "/" + required_string(state, "adapters_file", path));
  const std::string state_file = required_string(state, "strategy_state_file", path);
  if (!state_file.empty()) checkpoint.strategy_state = load_strategy_state(dir + "/" + state_file);
  for (const auto& [id, num_samples] : state.at("registered").as_object()) {
    checkpoint.registered[id] = num_samples.as_int();
  }
  if (const json::Value* site_lora = state.find("site_lora")) {   // absent in checkpoints before it existed
    if (!site_lora->is_object()) throw std::runtime_error(path + ": \"site_lora\" is not an object");
    for (const auto& [id, entry] : site_lora->as_object()) {
      const json::Value* rank = entry.is_object() ? entry.find("rank") : nullptr;
      const json::Value* alpha = entry.is_object() ? entry.find("alpha") : nullptr;
      if (!rank || !alpha) throw std::runtime_error(path + ": \"site_lora\" of " + id + " lacks its rank or alpha");
      checkpoint.site_lora[id] = SiteLora{rank->as_int(), alpha->as_double()};
    }
  }
  if (const json::Value* sites = state.find("last_round_sites")) {   // absent in checkpoints before it existed
    if (!sites->is_array()) throw std::runtime_error(path + ": \"last_round_sites\" is not an array");
    for (const json::Value& id : sites->as_array()) {
      if (!id.is_string()) throw std::runtime_error(path + ": \"last_round_sites\" holds a non-string");
      checkpoint.last_round_sites.push_back(id.as_string());
    }
  }
  if (const json::Value* weights = state.find("last_round_weights")) {   // absent: equal weights
    if (!weights->is_array() || weights->as_array().size() != checkpoint.last_round_sites.size()) {
      throw std::runtime_error(path + ": \"last_round_weights\" is not an array of one weight per last_round_sites entry");
    }
    for (const json::Value& weight : weights->as_array()) {
      if (!weight.is_number() || !(weight.as_double() > 0)) {
        throw std::runtime_error(path + ": \"last_round_weights\" holds " + weight.dump() + ", expected a positive number");
      }
      checkpoint.last_round_weights.push_back(weight.as_double());
    }
  }
  if (const json::Value* rdp = state.find("dp_rdp")) {
    if (!rdp->is_array()) throw std::runtime_error(path + ": \"dp_rdp\" is not an array");
    for (const json::Value& value : rdp->as_array()) checkpoint.dp_rdp.push_back(value.as_double());
    checkpoint.dp_rounds = state.at("dp_rounds").as_int();
  }
  return checkpoint;
}

}  // namespace cleave::aggregator
