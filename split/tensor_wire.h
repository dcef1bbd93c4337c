// Between at::Tensor and the wire's tensors, with the shape checked against
// what the receiver expects.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "wire/tensor.h"

namespace cleave::split {

// float tensor (any device and floating dtype) -> wire tensor in `codec`
// (throws on NaN/Inf), rounded as `rounding` says (int4 only). from_wire
// returns CPU float32: the receiving model moves it to its device
// (LlamaModel::run_blocks), differentiably.
wire::WireTensor to_wire(const at::Tensor& tensor, wire::WireDType codec, wire::Rounding rounding = {});

// The rounding of one tensor a split client or server sends: to nearest, or
// stochastic seeded from the step (client, round, step) and `stream` (which
// of the step's tensors), so every send draws afresh and a run repeats.
enum class TensorStream : uint64_t { activations_up = 1, activations_down = 2, gradients_up = 3, gradients_down = 4 };
wire::Rounding step_rounding(bool stochastic, const std::string& client_id, uint32_t round, uint64_t step,
                             TensorStream stream);

// Decodes and checks the shape: throws wire::WireError naming `what`, the
// shape received and the one expected. -1 in `expected` accepts any size.
at::Tensor from_wire(const wire::WireTensor& tensor, const std::vector<int64_t>& expected,
                     const char* what);

// Parses "f32" | "f16" | "bf16" | "int8" | "int4"; throws listing the valid names.
wire::WireDType parse_codec(const std::string& name);

}  // namespace cleave::split
