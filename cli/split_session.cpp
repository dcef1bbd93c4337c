#include "cli/split_session.h"

#include <stdexcept>

namespace cleave::cli {

SplitSession connect_split_server(const RunConfig& config, const std::string& client_id, int64_t n_layers,
                                  const ServiceLog& log) {
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
  session.channel = connect_service(config.split.server, config.secure, secure::NodeRole::split_server,
                                    config.split.server_name, session.options.max_message_bytes, log);
  return session;
}

std::function<bool(int64_t layer)> client_blocks(const split::SplitClientOptions& options, int64_t n_layers) {
  const int64_t cut = options.cut_layer;
  if (options.mode == split::SplitMode::vanilla) return [cut](int64_t layer) { return layer < cut; };
  const int64_t top = options.top_cut > 0 ? options.top_cut : n_layers - 1;
  return [cut, top](int64_t layer) { return layer < cut || layer >= top; };
}

}  // namespace cleave::cli
