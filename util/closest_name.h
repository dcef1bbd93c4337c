// The suggestion behind "unknown key 'lora.rnak' (did you mean 'lora.rank'?)"
// and "unknown flag --modle (did you mean --model?)": the configuration keys
// and the command-line flags find it here.
#pragma once

#include <string>
#include <vector>

namespace cleave {

// The closest of `candidates` to a mistyped `name` (edit distance, or the
// initials of a snake_case name: learning_rate -> lr), or "" if none is close.
std::string closest_name(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace cleave
