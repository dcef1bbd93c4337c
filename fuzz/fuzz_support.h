// Pieces shared by the fuzz targets and the seed corpus generator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "transport/channel.h"

namespace cleave::fuzz {

// The split server target's model (a tiny random Llama) and client: the seed
// generator writes frames for exactly these.
inline constexpr int64_t kModelDim = 32;
inline constexpr int64_t kModelVocab = 64;
inline constexpr const char* kClientId = "fuzz-site";

// Cuts `size` bytes into chunks that each start at an occurrence of the
// 4-byte `magic` (the first chunk also holds whatever precedes the first
// occurrence). A fuzz input is thus a run of frames glued together, and
// valid seeds are simply concatenated valid frames.
std::vector<net::Bytes> split_at_magic(const uint8_t* data, size_t size, const char magic[4]);

// A fresh directory under the system temp dir, removed at process exit.
std::string temporary_directory(const std::string& prefix);

}  // namespace cleave::fuzz
