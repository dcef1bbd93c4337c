// A strategy's state (Strategy::state(): FedAdam/FedYogi moments and step) in
// a safetensors file, written atomically with the round it was saved after
// as metadata. The aggregator's checkpoint and the SFL-V1 split server's keep
// their strategy state this way.
#pragma once

#include <cstdint>
#include <string>

#include "aggregator/client_update.h"

namespace cleave::aggregator {

// Throws std::runtime_error for a tensor of another dtype than float32,
// float64 or int64.
void save_strategy_state(const NamedTensors& state, const std::string& path, uint32_t round);

// Throws std::runtime_error naming `path` for a missing or corrupt file.
NamedTensors load_strategy_state(const std::string& path);

}  // namespace cleave::aggregator
