// One request from a site to its split server, resent under the split
// options' timeouts and backoff until the reply arrives: the training steps
// (split/split_client.h) and the generation sessions (split/split_decoder.h)
// both ask through it.
#pragma once

#include <functional>

#include "split/split_client.h"

namespace cleave::split {

// Sends `request` and returns the reply of type `expected` for which
// `answers` holds (all of them when it is empty): a late reply to an earlier
// attempt's request is skipped. An error reply whose key is `key` (or empty)
// throws SplitSessionLost for ErrorCode::unknown_client, SplitError otherwise;
// no reply after options.max_attempts throws SplitError naming the server.
// Counts both frames in `bytes` under their message names.
net::Bytes exchange_with_server(net::ClientChannel& channel, const SplitClientOptions& options,
                                wire::ByteCounter& bytes, const net::Bytes& request, MessageType expected,
                                const StepKey& key, const std::function<bool(const net::Bytes&)>& answers = {});

}  // namespace cleave::split
