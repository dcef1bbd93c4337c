// libFuzzer target: frames from untrusted peers into a SecureServerChannel.
// The channel must never crash, leak or hang, whatever arrives; a bad peer
// loses its session and no one else notices.
//
// Input: one mode byte, then the rest.
//   mode bit 0 = 0  raw: the rest is cut into frames at each "CLTS" (the
//                   frame magic) and delivered from 1-4 peers (mode bits 1-2)
//                   to a server that keeps at most 2 sessions, so eviction runs
//                   too. Seeds: real ClientHello frames.
// One server serves the whole fuzzing process (loading its certificates for
// every input would dominate the time); each input's peers have fresh ids,
// so an input meets no session of an earlier one, except through eviction.
//   mode bit 0 = 1  authenticated: a real client (OpenSSL over memory BIOs,
//                   with a federation certificate) completes the handshake,
//                   then the rest, cut at each "CLTS", is written as raw
//                   plaintext into the TLS stream, one frame per chunk. This
//                   reaches the message reassembly (length prefixes, limits,
//                   messages split across records and frames) that only an
//                   authenticated peer can reach. Every message the server
//                   delivers is echoed back through send().
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>

#include "fuzz/fuzz_support.h"
#include "secure/ca.h"
#include "secure/tls_channel.h"

namespace {

using namespace cleave;
using secure::SslCtxPtr;
using secure::SslPtr;

// The inner channel: hands out queued frames, records what the server sends.
class FrameFeed : public net::ServerChannel {
 public:
  void send(const net::PeerId& peer, net::Bytes payload) override {
    sent.push_back({peer, std::move(payload)});
  }
  std::optional<net::Envelope> recv(net::Millis) override {
    if (incoming.empty()) return std::nullopt;
    net::Envelope next = std::move(incoming.front());
    incoming.pop_front();
    return next;
  }
  std::string endpoint() const override { return "fuzz://server"; }

  std::deque<net::Envelope> incoming;
  std::deque<net::Envelope> sent;
};

struct Federation {
  secure::TlsIdentity server;
  secure::TlsIdentity client;
};

const Federation& federation() {
  static const Federation pki = [] {
    const std::string root = fuzz::temporary_directory("cleave-secure-fuzz");
    secure::ca_init(root + "/ca", "fuzz-federation");
    Federation f;
    f.server = secure::ca_issue(root + "/ca", secure::NodeRole::split_server, "split-0",
                                root + "/nodes").identity;
    f.client = secure::ca_issue(root + "/ca", secure::NodeRole::client, "site-a",
                                root + "/nodes").identity;
    return f;
  }();
  return pki;
}

secure::SecureChannelOptions server_options() {
  secure::SecureChannelOptions options;
  options.identity = federation().server;
  options.allowed_peer_roles = {secure::NodeRole::client};
  options.max_message_bytes = 1 << 20;
  options.max_sessions = 2;
  options.crl_check_interval = secure::Millis(3600 * 1000);
  options.log = [](const std::string&) {};
  return options;
}

// Drains everything the server can deliver now; echoes each message.
void pump(secure::SecureServerChannel& server) {
  while (auto envelope = server.recv(net::Millis(0))) {
    try {
      server.send(envelope->peer, std::move(envelope->payload));
    } catch (const net::PeerUnreachable&) {
      // Its session failed later in the same frame: fine.
    }
  }
}

net::Bytes frame_of(const uint8_t* records, size_t size) {
  net::Bytes frame = {'C', 'L', 'T', 'S', 0, 1, 0, 0};
  frame.insert(frame.end(), records, records + size);
  return frame;
}

// A TLS 1.3 client with the federation's client certificate, over memory BIOs.
class RawClient {
 public:
  RawClient() {
    ssl_.reset(SSL_new(context()));
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_.get(), in_, out_);
    SSL_set_connect_state(ssl_.get());
  }

  // Everything the client wrote since the last call, as one frame (or empty).
  net::Bytes take_frame() {
    char* data = nullptr;
    const long size = BIO_get_mem_data(out_, &data);
    if (size <= 0) return {};
    net::Bytes frame = frame_of(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(size));
    (void)BIO_reset(out_);
    return frame;
  }

  void give(const net::Bytes& frame) {
    if (frame.size() > 8) BIO_write(in_, frame.data() + 8, static_cast<int>(frame.size() - 8));
  }

  bool handshake_step() { return SSL_do_handshake(ssl_.get()) == 1; }
  void write(const net::Bytes& plaintext) {
    size_t written = 0;
    if (!plaintext.empty()) SSL_write_ex(ssl_.get(), plaintext.data(), plaintext.size(), &written);
  }
  void close() { SSL_shutdown(ssl_.get()); }

 private:
  static SSL_CTX* context() {
    static const SslCtxPtr ctx = [] {
      const Federation& f = federation();
      SslCtxPtr c(SSL_CTX_new(TLS_client_method()));
      SSL_CTX_set_min_proto_version(c.get(), TLS1_3_VERSION);
      if (SSL_CTX_use_certificate_chain_file(c.get(), f.client.cert_path.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(c.get(), f.client.key_path.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_load_verify_locations(c.get(), f.client.ca_path.c_str(), nullptr) != 1) {
        throw std::runtime_error("fuzz client: cannot load the client identity");
      }
      SSL_CTX_set_verify(c.get(), SSL_VERIFY_PEER, nullptr);
      return c;
    }();
    return ctx.get();
  }

  SslPtr ssl_;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
};

struct Server {
  FrameFeed* inner;
  std::unique_ptr<secure::SecureServerChannel> channel;
  uint64_t inputs = 0;  // names each input's peers
};

Server& server_instance() {
  static Server server = [] {
    auto feed = std::make_unique<FrameFeed>();
    Server s{feed.get(), nullptr};
    s.channel = std::make_unique<secure::SecureServerChannel>(std::move(feed), server_options());
    return s;
  }();
  return server;
}

void fuzz_raw(uint8_t mode, const uint8_t* data, size_t size) {
  Server& instance = server_instance();
  FrameFeed& inner = *instance.inner;
  secure::SecureServerChannel& server = *instance.channel;
  const std::string input = std::to_string(++instance.inputs);
  const size_t peers = 1 + ((mode >> 1) & 3);
  size_t index = 0;
  for (net::Bytes& frame : fuzz::split_at_magic(data, size, "CLTS")) {
    inner.incoming.push_back({input + "-peer-" + std::to_string(index++ % peers), std::move(frame)});
    pump(server);
  }
  inner.sent.clear();
  if (server.session_count() > 2) __builtin_trap();  // max_sessions
}

void fuzz_authenticated(const uint8_t* data, size_t size) {
  Server& instance = server_instance();
  FrameFeed& inner = *instance.inner;
  secure::SecureServerChannel& server = *instance.channel;
  inner.sent.clear();
  RawClient client;
  const net::PeerId peer = std::to_string(++instance.inputs) + "-site-a";
  for (int round = 0; round < 8 && !client.handshake_step(); ++round) {
    net::Bytes frame = client.take_frame();
    if (!frame.empty()) inner.incoming.push_back({peer, std::move(frame)});
    pump(server);
    while (!inner.sent.empty()) {
      client.give(inner.sent.front().payload);
      inner.sent.pop_front();
    }
  }
  ERR_clear_error();
  if (!server.peer_identity(peer)) {
    // The client's last handshake flight is still on its way.
    inner.incoming.push_back({peer, client.take_frame()});
    pump(server);
  }
  if (!server.peer_identity(peer)) __builtin_trap();  // a valid client must get in
  for (const net::Bytes& chunk : fuzz::split_at_magic(data, size, "CLTS")) {
    client.write(chunk);
    inner.incoming.push_back({peer, client.take_frame()});
    pump(server);
  }
  client.close();
  net::Bytes goodbye = client.take_frame();
  if (!goodbye.empty()) inner.incoming.push_back({peer, std::move(goodbye)});
  pump(server);
  inner.sent.clear();
  ERR_clear_error();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)server_instance();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  if (mode & 1) {
    fuzz_authenticated(data + 1, size - 1);
  } else {
    fuzz_raw(mode, data + 1, size - 1);
  }
  ERR_clear_error();
  return 0;
}
