#include "lora/adapter_set.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "model/llama_model.h"

namespace cleave::lora {

namespace {
bool ends_with(const std::string& name, const std::string& suffix) {
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

bool is_lora_a(const std::string& name) { return ends_with(name, ".lora_a"); }
bool is_lora_b(const std::string& name) { return ends_with(name, ".lora_b"); }

int64_t rank_of(const NamedTensors& adapters) {
  for (const auto& [name, tensor] : adapters) {
    if (is_lora_a(name)) return tensor.size(0);
  }
  return 0;
}

std::vector<std::string> adapted_projections(const LlamaModel& model, const LoraOptions& options,
                                             const std::function<bool(int64_t)>& keep_layer) {
  options.validate();
  std::set<std::string> wanted;
  for (const std::string& t : options.targets) wanted.insert(t);
  const std::set<int64_t> layers(options.layers.begin(), options.layers.end());
  for (int64_t l : layers) {
    if (l >= model.n_layers()) {
      throw std::invalid_argument("lora.layers names block " + std::to_string(l) +
                                  " but the model has " + std::to_string(model.n_layers()));
    }
  }
  std::vector<std::string> names;
  for (const FrozenLinear* linear : model.linears()) {
    const std::string target = target_of(linear->name);
    const int64_t layer = layer_of(linear->name);
    if (target.empty() || !wanted.count(target)) continue;
    if (!layers.empty() && !layers.count(layer)) continue;
    if (keep_layer && !keep_layer(layer)) continue;
    names.push_back(linear->name);
  }
  return names;
}

AdapterSet AdapterSet::create(const LlamaModel& model, const LoraOptions& options, uint64_t seed,
                              const std::function<bool(int64_t)>& keep_layer) {
  const std::vector<std::string> names = adapted_projections(model, options, keep_layer);
  const std::set<std::string> adapted(names.begin(), names.end());
  AdapterSet set;
  set.options_ = options;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const FrozenLinear* linear : model.linears()) {
    if (!adapted.count(linear->name)) continue;
    const int64_t in = linear->weight.in_features(), out = linear->weight.out_features();
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    at::Tensor a = at::empty({options.rank, in}, at::kFloat).uniform_(-bound, bound, gen);
    at::Tensor b = at::zeros({out, options.rank}, at::kFloat);
    set.add(linear->name, a, b);
  }
  // drawn on the CPU (the same values on every device), kept where the model computes
  set.to(model.device());
  return set;
}

at::Tensor AdapterSet::add_delta(const std::string& base_name, const at::Tensor& x, const at::Tensor& y) const {
  auto it = pairs_.find(base_name);
  if (it == pairs_.end()) return y;
  at::Tensor input = x;
  if (training_ && options_.dropout > 0) input = at::dropout(x, options_.dropout, /*train=*/true);
  // Mixed precision: float32 A and B are cast to the input's dtype (bf16/fp16)
  // here, so autograd returns their gradients in float32 (no-op for float32).
  const at::Tensor a = it->second.a.to(x.scalar_type()), b = it->second.b.to(x.scalar_type());
  // [..., in] -> [..., r]; scaling the [..., r] intermediate instead of the
  // [..., out] result: same value, a pass over r instead of out columns
  // (forward and backward)
  const at::Tensor h = at::matmul(input, a.t()) * scale();
  const int64_t out = y.size(-1), r = h.size(-1);
  // [M, out] + [M, r] [r, out]: no [M, out] delta is made and added after.
  return at::addmm(y.reshape({-1, out}), h.reshape({-1, r}), b.t()).view(y.sizes());
}

std::vector<at::Tensor> AdapterSet::parameters_of(const std::string& base_name) const {
  auto it = pairs_.find(base_name);
  if (it == pairs_.end()) return {};
  if (options_.freezes_a()) return {it->second.b};
  return {it->second.a, it->second.b};
}

std::vector<at::Tensor> AdapterSet::parameters() const {
  std::vector<at::Tensor> out;
  out.reserve(pairs_.size() * 2);
  for (const auto& [name, pair] : pairs_) {
    if (!options_.freezes_a()) out.push_back(pair.a);
    out.push_back(pair.b);
  }
  return out;
}

void AdapterSet::set_options(const LoraOptions& options) {
  options_ = options;
  for (auto& [name, pair] : pairs_) pair.a.requires_grad_(!options_.freezes_a());
}

int64_t AdapterSet::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, pair] : pairs_) n += pair.a.numel() + pair.b.numel();
  return n;
}

NamedTensors AdapterSet::to_named() const {
  NamedTensors out;
  for (const auto& [name, pair] : pairs_) {
    out[name + ".lora_a"] = pair.a.detach().to(at::kCPU, at::kFloat, false, /*copy=*/true);
    out[name + ".lora_b"] = pair.b.detach().to(at::kCPU, at::kFloat, false, /*copy=*/true);
  }
  return out;
}

void AdapterSet::assign(const NamedTensors& named) {
  if (named.size() != pairs_.size() * 2) {
    throw std::invalid_argument("adapter update has " + std::to_string(named.size()) +
                                " tensors, expected " + std::to_string(pairs_.size() * 2));
  }
  at::NoGradGuard no_grad;
  for (auto& [name, pair] : pairs_) {
    for (auto [suffix, dst] : {std::pair{".lora_a", &pair.a}, std::pair{".lora_b", &pair.b}}) {
      auto it = named.find(name + suffix);
      if (it == named.end()) throw std::invalid_argument("adapter update lacks " + name + suffix);
      if (!it->second.sizes().equals(dst->sizes())) {
        throw std::invalid_argument("adapter tensor " + name + suffix + " has shape " +
                                    c10::str(it->second.sizes()) + ", expected " +
                                    c10::str(dst->sizes()));
      }
      dst->copy_(it->second);
    }
  }
}

void AdapterSet::to(c10::Device device) {
  device_ = device;
  for (auto& [name, pair] : pairs_) {
    if (pair.a.device() == device && pair.b.device() == device) continue;
    pair.a = pair.a.detach().to(device).requires_grad_(!options_.freezes_a());
    pair.b = pair.b.detach().to(device).requires_grad_(true);
  }
}

AdapterSet AdapterSet::clone() const {
  AdapterSet copy;
  copy.device_ = device_;
  copy.options_ = options_;
  copy.training_ = training_;
  for (const auto& [name, pair] : pairs_) copy.add(name, pair.a.detach().clone(), pair.b.detach().clone());
  return copy;
}

AdapterSet AdapterSet::subset(const std::function<bool(int64_t)>& keep_layer) const {
  AdapterSet copy;
  copy.device_ = device_;
  copy.options_ = options_;
  copy.training_ = training_;
  for (const auto& [name, pair] : pairs_) {
    if (keep_layer(layer_of(name))) copy.add(name, pair.a.detach().clone(), pair.b.detach().clone());
  }
  return copy;
}

void AdapterSet::add(const std::string& base_name, at::Tensor a, at::Tensor b) {
  if (a.dim() != 2 || b.dim() != 2 || a.size(0) != b.size(1)) {
    throw std::invalid_argument("adapter " + base_name + ": lora_a " + c10::str(a.sizes()) +
                                " and lora_b " + c10::str(b.sizes()) + " do not form a LoRA pair");
  }
  LoraPair pair{a.to(device_, at::kFloat).contiguous().detach().requires_grad_(!options_.freezes_a()),
                b.to(device_, at::kFloat).contiguous().detach().requires_grad_(true)};
  pairs_[base_name] = std::move(pair);
}

}  // namespace cleave::lora
