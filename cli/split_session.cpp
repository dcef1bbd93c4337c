#include "cli/split_session.h"

#include <stdexcept>

namespace cleave::cli {

SplitSession connect_split_server(const RunConfig& config, const std::string& client_id, int64_t n_layers,
                                  const Log& log, SplitUse use) {
  SplitSession session;
  session.options = config.split.options;
  session.options.client_id = client_id;
  session.options.recompute = config.train.recompute;  // the client's blocks
  if (session.options.mode == split::SplitMode::u_shaped && session.options.top_cut == 0) {
    session.options.top_cut = static_cast<int32_t>(n_layers - 1);  // the last block stays on the client
  }
  try {
    session.options.validate(n_layers);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(config.source + ": " + e.what());
  }
  if (session.options.mode == split::SplitMode::vanilla && use == SplitUse::generation) {
    log.warning("split.mode: vanilla: the split server runs the head and returns the logits of every token, so it "
                "sees what this site generates; split.mode: u_shaped keeps the head here");
  } else if (session.options.mode == split::SplitMode::vanilla) {
    log.warning("split.mode: vanilla: every step sends this site's labels, the next-token ids of its text, to "
                "the split server; split.mode: u_shaped keeps them here");
  }
  session.channel = connect_service(config.split.server, config.secure, secure::NodeRole::split_server,
                                    config.split.server_name, session.options.max_message_bytes, log);
  return session;
}

std::string describe_site_blocks(const split::SplitClientOptions& options, int64_t n_layers) {
  const split::SiteBlocks blocks = client_blocks(options, n_layers);
  const std::string bottom = "blocks [0, " + std::to_string(blocks.cut_layer) + ")";
  if (blocks.layout == split::SiteLayout::vanilla) {
    return bottom + " here (vanilla: the labels go to the split server)";
  }
  return bottom + " and [" + std::to_string(blocks.top_cut) + ", " + std::to_string(n_layers) +
         "), the head and the loss here (u_shaped: the labels stay here)";
}

split::SiteBlocks client_blocks(const split::SplitClientOptions& options, int64_t n_layers) {
  return split::site_blocks(options.mode, options.cut_layer, options.top_cut, n_layers);
}

}  // namespace cleave::cli
