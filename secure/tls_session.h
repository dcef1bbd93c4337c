// One TLS 1.3 session with one peer, driven entirely through memory: frames
// from the peer go in, frames for the peer and whole application messages
// come out. Knows nothing about channels.
//
// Frame (one channel message) = 8-byte header + TLS records:
//   bytes 0-3 magic "CLTS", bytes 4-5 version (big-endian, 1), bytes 6-7 zero.
// Inside the encrypted stream every application message is an 8-byte
// little-endian length followed by that many bytes, so message boundaries
// are authenticated too.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "secure/frame_bio.h"
#include "secure/node_role.h"
#include "secure/tls_context.h"

namespace cleave::secure {

using Bytes = std::vector<uint8_t>;

inline constexpr uint8_t kFrameMagic[4] = {'C', 'L', 'T', 'S'};
inline constexpr uint16_t kFrameVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 8;

class TlsSession {
 public:
  enum class State { handshaking, established, closed, failed };

  // A client session has its ClientHello waiting in take_outgoing_frame().
  TlsSession(TlsContext& context, std::string peer_label);
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Processes one frame from the peer. Afterwards check state(): on failure
  // failure() says why and the outgoing frame may hold a TLS alert. Takes
  // the frame: a large message that arrives whole in it is decrypted in
  // place, over its own ciphertext, and leaves as that same buffer (no
  // allocation, no copy into a fresh, page-faulting buffer).
  void receive_frame(Bytes frame);
  // Encrypts one application message; the session must be established.
  void send_message(const Bytes& payload);
  // Queues a close_notify alert (for a clean goodbye before reconnecting).
  void close();

  // Everything the peer should receive now, as one frame; nullopt if nothing.
  std::optional<Bytes> take_outgoing_frame();
  // Complete application messages received so far, oldest first.
  std::deque<Bytes>& inbox() { return inbox_; }

  State state() const { return state_; }
  bool established() const { return state_ == State::established; }
  const std::string& failure() const { return failure_; }
  // Why a failed session failed, as a metrics label: a certificate refusal's
  // class (VerifyNote::reason), not_tls for a peer that does not speak
  // cleave's TLS frames (plaintext, another version), else tls (the
  // handshake or a record failed).
  std::string failure_reason() const;
  // Whether the peer opened the session with a ClientHello (or was not
  // speaking cleave's TLS frames at all): false for a session begun by stray
  // records (the rest of a session the server just dropped).
  bool handshake_attempted() const;
  // The authenticated peer; set once established.
  const std::optional<PeerIdentity>& peer() const { return peer_; }
  X509* peer_certificate() const;
  const std::string& label() const { return note_.peer_label; }

 private:
  void fail(const std::string& what, const char* reason = "tls");
  void finish_handshake();
  void read_application_data();
  // SSL_read_ex into `target`; false when nothing more can be read now
  // (then state() says whether the session ended).
  bool read_plaintext(uint8_t* target, size_t wanted, size_t* got);
  void start_body(uint64_t length);
  void finish_body();
  // After a frame: hands an in-place message over to the inbox, or moves a
  // partial one out of the frame before the frame is released.
  void settle_frame();
  void write_all(const uint8_t* data, size_t size);

  TlsContext& context_;
  VerifyNote note_;
  std::string failure_reason_;
  bool first_frame_seen_ = false;
  bool opened_with_client_hello_ = false;
  SslPtr ssl_;
  FrameBuffers buffers_;  // behind the SSL's BIO
  Bytes carry_;           // received bytes OpenSSL has not consumed yet
  State state_ = State::handshaking;
  std::string failure_;
  std::optional<PeerIdentity> peer_;
  std::deque<Bytes> inbox_;

  // The frame being processed, when OpenSSL reads straight from it (not
  // from carry_): its leading bytes may become an in-place message.
  Bytes frame_;
  bool reading_frame_ = false;
  bool frame_claimed_ = false;     // a message already lives in frame_
  std::optional<size_t> claimed_slot_;  // its place in inbox_, filled by settle_frame
  uint64_t claimed_length_ = 0;

  // The application message being reassembled: in place at the start of
  // frame_ (in_place_), or in body_.
  uint8_t length_prefix_[8] = {};
  size_t length_prefix_have_ = 0;
  bool in_body_ = false;
  bool in_place_ = false;
  uint64_t body_length_ = 0;
  uint64_t body_have_ = 0;
  Bytes body_;
};

}  // namespace cleave::secure
