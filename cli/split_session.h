// A split client's connection to its split server, from the `split:` and
// `secure:` sections (`cleave train` with split:, `cleave client`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cli/config.h"
#include "cli/secure_channels.h"
#include "split/site_blocks.h"
#include "split/split_client.h"

namespace cleave::cli {

struct SplitSession {
  std::unique_ptr<net::ClientChannel> channel;  // TLS to a split-server certificate, unless insecure
  split::SplitClientOptions options;            // client_id resolved (see node_id)
};

// What the site uses the split server for: the warning about vanilla differs.
enum class SplitUse { training, generation };

// Validates the options against the model's `n_layers` (ConfigError) and
// connects; the connection is made in the background.
SplitSession connect_split_server(const RunConfig& config, const std::string& client_id, int64_t n_layers,
                                  const Log& log, SplitUse use = SplitUse::training);

// The blocks whose adapters the client trains: [0, cut_layer), and in
// U-shaped mode also [top_cut, L).
split::SiteBlocks client_blocks(const split::SplitClientOptions& options, int64_t n_layers);

// "blocks [0, 2) and [7, 8), the head and the loss here (u_shaped: the labels
// stay here)" or the vanilla equivalent, for the start-up line.
std::string describe_site_blocks(const split::SplitClientOptions& options, int64_t n_layers);

}  // namespace cleave::cli
