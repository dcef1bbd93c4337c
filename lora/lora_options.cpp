#include "lora/lora_options.h"

#include <map>
#include <set>
#include <stdexcept>

namespace cleave::lora {
namespace {

const std::map<std::string, std::string>& target_map() {
  static const std::map<std::string, std::string> kTargets = {
      {"q", "attn_q"},       {"k", "attn_k"},   {"v", "attn_v"},     {"o", "attn_output"},
      {"gate", "ffn_gate"}, {"up", "ffn_up"}, {"down", "ffn_down"}};
  return kTargets;
}

}  // namespace

void LoraOptions::validate() const {
  if (rank <= 0) throw std::invalid_argument("lora.rank must be > 0, got " + std::to_string(rank));
  if (!(alpha > 0)) throw std::invalid_argument("lora.alpha must be > 0");
  if (!(dropout >= 0 && dropout < 1)) throw std::invalid_argument("lora.dropout must be in [0, 1)");
  if (targets.empty()) throw std::invalid_argument("lora.targets must name at least one projection");
  std::set<std::string> seen;
  for (const std::string& t : targets) {
    target_tensor(t);
    if (!seen.insert(t).second) throw std::invalid_argument("lora.targets lists '" + t + "' twice");
  }
  for (int64_t l : layers) {
    if (l < 0) throw std::invalid_argument("lora.layers must be >= 0");
  }
}

std::string aggregation_name(LoraAggregation aggregation) {
  switch (aggregation) {
    case LoraAggregation::separate: return "separate";
    case LoraAggregation::ffa: return "ffa";
    case LoraAggregation::product: return "product";
  }
  return "?";
}

std::string target_tensor(const std::string& target) {
  auto it = target_map().find(target);
  if (it == target_map().end()) {
    throw std::invalid_argument("unknown LoRA target '" + target +
                                "': expected one of q, k, v, o, gate, up, down");
  }
  return it->second;
}

std::string target_of(const std::string& base_name) {
  for (const auto& [target, tensor] : target_map()) {
    if (base_name.find("." + tensor + ".") != std::string::npos) return target;
  }
  return "";
}

int64_t layer_of(const std::string& base_name) {
  if (base_name.rfind("blk.", 0) != 0) return -1;
  const size_t dot = base_name.find('.', 4);
  try {
    return std::stoll(base_name.substr(4, dot - 4));
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace cleave::lora
