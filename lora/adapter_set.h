// A set of LoRA adapters on a frozen base, keyed by the base weight's GGUF
// name: delta(x) = (alpha / r) * B (A dropout(x)). Only A and B train.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lora/lora_options.h"
#include "model/frozen_linear.h"

namespace cleave {
class LlamaModel;
}

namespace cleave::lora {

struct LoraPair {
  at::Tensor a;  // [r, in]   PEFT lora_A.weight
  at::Tensor b;  // [out, r]  PEFT lora_B.weight
};

// Named adapter tensors, flat: "<base>.lora_a" / "<base>.lora_b" (the names of
// the GGUF LoRA file and of adapter deltas on the wire).
using NamedTensors = std::map<std::string, at::Tensor>;

// "<base>.lora_a" / "<base>.lora_b".
bool is_lora_a(const std::string& name);
bool is_lora_b(const std::string& name);
// The rank of flat adapters: the rows of their lora_a tensors (0 when none).
int64_t rank_of(const NamedTensors& adapters);

// The base tensors AdapterSet::create adapts for `options` in the blocks
// `keep_layer` selects, in the model's order, without making any tensor
// (what a split site expects its split server to adapt).
std::vector<std::string> adapted_projections(const LlamaModel& model, const LoraOptions& options,
                                             const std::function<bool(int64_t layer)>& keep_layer = {});

class AdapterSet : public LinearAdapters {
 public:
  AdapterSet() = default;
  // Adapters for every targeted projection of `model` in the blocks selected by
  // options.layers and `keep_layer` (e.g. a split client keeps blocks below its
  // cut). A: Kaiming-uniform (PEFT: bound 1/sqrt(in)) from `seed`; B: zeros.
  static AdapterSet create(const LlamaModel& model, const LoraOptions& options, uint64_t seed,
                           const std::function<bool(int64_t layer)>& keep_layer = {});

  // y + delta(x) as one addmm: the B product accumulates into a copy of y.
  at::Tensor add_delta(const std::string& base_name, const at::Tensor& x, const at::Tensor& y) const override;
  bool adapts(const std::string& base_name) const override { return pairs_.count(base_name) > 0; }
  std::vector<at::Tensor> parameters_of(const std::string& base_name) const override;

  const LoraOptions& options() const { return options_; }
  double scale() const { return options_.scale(); }
  void set_training(bool training) { training_ = training; }

  const std::map<std::string, LoraPair>& pairs() const { return pairs_; }
  // What trains: A and B of every pair in name order, or only B when
  // options().freezes_a() (FFA-LoRA).
  std::vector<at::Tensor> parameters() const;
  int64_t parameter_count() const;

  NamedTensors to_named() const;                 // detached float32 copies on the CPU
  // Copies values in; names and shapes must match exactly (throws naming the tensor).
  void assign(const NamedTensors& named);
  AdapterSet clone() const;                      // deep copy, requires_grad as here
  // A deep copy of the pairs whose block satisfies `keep_layer` (e.g. the
  // blocks below a split cut).
  AdapterSet subset(const std::function<bool(int64_t layer)>& keep_layer) const;
  // Adds a pair (used by loaders); a and b are made float32 leaves on this
  // set's device, trainable unless the options freeze A.
  void add(const std::string& base_name, at::Tensor a, at::Tensor b);
  // Moves every A and B (new float32 leaves: build optimizers after this) to
  // `device`, where later add()s put theirs too. create() already places
  // them on the model's device.
  void to(c10::Device device);
  c10::Device device() const { return device_; }
  // With lora.aggregation ffa, A is frozen: no gradient, not a parameter.
  void set_options(const LoraOptions& options);

 private:
  LoraOptions options_;
  std::map<std::string, LoraPair> pairs_;
  bool training_ = false;
  c10::Device device_ = c10::Device(c10::DeviceType::CPU);
};

}  // namespace cleave::lora
