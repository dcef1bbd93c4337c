// Mutually authenticated TLS 1.3 over any cleave message channel.
//
//   SecureChannelOptions options;
//   options.identity = {"site-a.crt", "site-a.key", "ca.crt", "crl.pem"};
//   options.allowed_peer_roles = {NodeRole::split_server};
//   SecureClientChannel channel(net::zmq_connect(endpoint, {}), options);
//
// Plaintext is the caller's explicit choice (insecure: true): it simply does
// not wrap, and reports that with warn_insecure().
#pragma once

#include <string>

#include "secure/secure_client_channel.h"
#include "secure/secure_server_channel.h"
#include "secure/tls_options.h"

namespace cleave::secure {

// "insecure: true: traffic on <endpoint> is NOT encrypted or authenticated"
std::string insecure_warning(const std::string& endpoint);
// Logs insecure_warning(endpoint) through `log` as a warning.
void warn_insecure(const std::string& endpoint, const Log& log = Log::to_stderr("secure"));

}  // namespace cleave::secure
