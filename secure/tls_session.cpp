#include "secure/tls_session.h"

#include <openssl/err.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace cleave::secure {

namespace {

constexpr size_t kLengthPrefixBytes = 8;
// Small messages travel as one record with their length prefix; bigger ones
// are written in place to avoid copying them.
constexpr size_t kCoalesceLimit = 16 * 1024;
constexpr size_t kMaxWriteChunk = size_t{1} << 30;
// Messages at least this large are decrypted in place when they arrive whole
// (smaller ones only when they fill most of their frame).
constexpr uint64_t kInPlaceMinBytes = 64 * 1024;
// Most a message that is not in place reserves before its bytes arrive.
constexpr uint64_t kMaxUpfrontReserve = uint64_t{16} << 20;

std::string hex4(const uint8_t* bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string text;
  for (int i = 0; i < 4; ++i) {
    text += digits[bytes[i] >> 4];
    text += digits[bytes[i] & 15];
  }
  return text;
}

}  // namespace

TlsSession::TlsSession(TlsContext& context, std::string peer_label) : context_(context) {
  note_.peer_label = std::move(peer_label);
  ssl_ = context_.new_ssl(&note_);
  buffers_.outgoing_reserve = kFrameHeaderBytes;
  BIO* bio = new_frame_bio(&buffers_);
  SSL_set_bio(ssl_.get(), bio, bio);  // one BIO both ways: the SSL owns its one reference
  if (context_.side() == TlsContext::Side::client) {
    ERR_clear_error();
    const int status = SSL_do_handshake(ssl_.get());
    if (status != 1 && SSL_get_error(ssl_.get(), status) != SSL_ERROR_WANT_READ) {
      fail("cannot start the TLS handshake");
    }
  }
}

X509* TlsSession::peer_certificate() const { return SSL_get0_peer_certificate(ssl_.get()); }

std::string TlsSession::failure_reason() const {
  return note_.reason.empty() ? failure_reason_ : note_.reason;
}

bool TlsSession::handshake_attempted() const { return failure_reason_ == "not_tls" || opened_with_client_hello_; }

void TlsSession::fail(const std::string& what, const char* reason) {
  failure_reason_ = reason;
  std::string why = what;
  if (!note_.refusal.empty()) why += ": " + note_.refusal;
  const std::string openssl = drain_openssl_errors();
  if (openssl != "no OpenSSL error recorded") why += " (" + openssl + ")";
  failure_ = why;
  state_ = State::failed;
}

void TlsSession::receive_frame(Bytes frame) {
  if (state_ == State::failed || state_ == State::closed) return;
  if (frame.size() < kFrameHeaderBytes ||
      std::memcmp(frame.data(), kFrameMagic, sizeof kFrameMagic) != 0) {
    fail("frame is not a cleave TLS frame (magic " +
         (frame.size() >= 4 ? hex4(frame.data()) : std::string("missing")) + ", expected " +
         hex4(kFrameMagic) + "): is the peer running with insecure: true?",
         "not_tls");
    return;
  }
  if (!first_frame_seen_) {
    // A TLS record of type handshake (22) whose first message is a ClientHello (1).
    first_frame_seen_ = true;
    opened_with_client_hello_ =
        frame.size() > kFrameHeaderBytes + 5 && frame[kFrameHeaderBytes] == 22 && frame[kFrameHeaderBytes + 5] == 1;
  }
  const uint16_t version = static_cast<uint16_t>((frame[4] << 8) | frame[5]);
  if (version != kFrameVersion) {
    fail("cleave TLS frame version " + std::to_string(version) + ", this build speaks " +
         std::to_string(kFrameVersion) + ": run the same cleave version on both ends",
         "not_tls");
    return;
  }
  const uint8_t* records;
  size_t size;
  if (carry_.empty()) {
    frame_ = std::move(frame);
    reading_frame_ = true;
    records = frame_.data() + kFrameHeaderBytes;
    size = frame_.size() - kFrameHeaderBytes;
  } else {
    carry_.insert(carry_.end(), frame.begin() + kFrameHeaderBytes, frame.end());
    records = carry_.data();
    size = carry_.size();
  }
  buffers_.incoming = records;
  buffers_.incoming_size = size;
  buffers_.incoming_pos = 0;
  if (state_ == State::handshaking) finish_handshake();
  if (state_ == State::established) read_application_data();
  // Keep what OpenSSL left unread (a record split across frames) for next time.
  const size_t used = buffers_.incoming_pos;
  if (used == size) {
    carry_.clear();
  } else if (records == carry_.data()) {
    carry_.erase(carry_.begin(), carry_.begin() + static_cast<std::ptrdiff_t>(used));
  } else {
    carry_.assign(records + used, records + size);
  }
  buffers_.incoming = nullptr;
  buffers_.incoming_size = buffers_.incoming_pos = 0;
  settle_frame();
}

void TlsSession::settle_frame() {
  if (in_body_ && in_place_) {
    // The message goes on in the next frame: move its start out of this one.
    body_.reserve(static_cast<size_t>(std::min<uint64_t>(body_length_, kMaxUpfrontReserve)));
    body_.assign(frame_.begin(), frame_.begin() + static_cast<std::ptrdiff_t>(body_have_));
    in_place_ = false;
  }
  if (claimed_slot_) {
    // The plaintext of the whole message lies at the start of the frame.
    Bytes& message = inbox_[*claimed_slot_];
    message = std::move(frame_);
    message.resize(static_cast<size_t>(claimed_length_));
  }
  frame_ = Bytes();
  reading_frame_ = frame_claimed_ = false;
  claimed_slot_.reset();
}

void TlsSession::finish_handshake() {
  ERR_clear_error();
  const int status = SSL_do_handshake(ssl_.get());
  if (status != 1) {
    const int error = SSL_get_error(ssl_.get(), status);
    if (error != SSL_ERROR_WANT_READ) fail("TLS handshake failed");
    return;
  }
  // Belt and braces: the verify callback already refused anything else.
  X509* cert = peer_certificate();
  std::string why = "peer presented no certificate";
  if (cert != nullptr) peer_ = identity_of(cert, &why);
  if (!peer_ || SSL_get_verify_result(ssl_.get()) != X509_V_OK) {
    fail("TLS handshake completed without an authenticated peer: " + why);
    return;
  }
  state_ = State::established;
}

bool TlsSession::read_plaintext(uint8_t* target, size_t wanted, size_t* got) {
  ERR_clear_error();
  if (SSL_read_ex(ssl_.get(), target, std::min(wanted, size_t{INT_MAX}), got) == 1) return true;
  const int error = SSL_get_error(ssl_.get(), 0);
  if (error == SSL_ERROR_ZERO_RETURN) {
    state_ = State::closed;
  } else if (error != SSL_ERROR_WANT_READ) {
    fail("TLS record from the peer failed");
  }
  return false;
}

void TlsSession::start_body(uint64_t length) {
  in_body_ = true;
  body_length_ = length;
  body_have_ = 0;
  // In place when the whole message can still be in this frame: OpenSSL
  // copies each record's plaintext out only after reading the whole record,
  // and plaintext is shorter than its record, so the message, growing from
  // the frame's first byte, never overtakes the ciphertext still to be read.
  const size_t unread = buffers_.incoming_size - buffers_.incoming_pos +
                        static_cast<size_t>(SSL_pending(ssl_.get()));
  // Only one message per frame can live there, so it goes to a large one,
  // or to one that is most of its frame (a small message alone in its frame).
  const bool worth_it = length >= kInPlaceMinBytes || length * 2 >= frame_.size();
  in_place_ = reading_frame_ && !frame_claimed_ && worth_it && unread >= length;
  if (in_place_) {
    frame_claimed_ = true;
    return;
  }
  // Grown as the bytes arrive: a peer announcing a huge message it never
  // sends makes us reserve at most kMaxUpfrontReserve, and nothing is zeroed.
  body_.clear();
  body_.reserve(static_cast<size_t>(std::min<uint64_t>(length, kMaxUpfrontReserve)));
}

void TlsSession::finish_body() {
  in_body_ = false;
  if (in_place_) {
    in_place_ = false;
    claimed_slot_ = inbox_.size();
    claimed_length_ = body_length_;
    inbox_.emplace_back();  // filled by settle_frame once OpenSSL is done with the frame
    return;
  }
  inbox_.push_back(std::move(body_));
  body_ = Bytes();
}

void TlsSession::read_application_data() {
  const uint64_t limit = context_.options().max_message_bytes;
  uint8_t scratch[16384];
  for (;;) {
    size_t got = 0;
    if (!in_body_) {
      if (!read_plaintext(length_prefix_ + length_prefix_have_,
                          kLengthPrefixBytes - length_prefix_have_, &got)) {
        return;
      }
      length_prefix_have_ += got;
      if (length_prefix_have_ < kLengthPrefixBytes) continue;
      uint64_t length = 0;
      for (int i = 7; i >= 0; --i) length = (length << 8) | length_prefix_[i];
      length_prefix_have_ = 0;
      if (length > limit) {
        // Our verdict, not OpenSSL's: say goodbye so the peer is not left waiting.
        ERR_clear_error();
        SSL_shutdown(ssl_.get());
        fail("peer announced a message of " + std::to_string(length) + " bytes, above the " +
             "limit of " + std::to_string(limit) + " (max_message_bytes)");
        return;
      }
      start_body(length);
    } else if (in_place_) {
      if (!read_plaintext(frame_.data() + body_have_, body_length_ - body_have_, &got)) return;
      body_have_ += got;
    } else {
      const size_t wanted = static_cast<size_t>(
          std::min<uint64_t>(sizeof scratch, body_length_ - body_have_));
      if (!read_plaintext(scratch, wanted, &got)) return;
      body_.insert(body_.end(), scratch, scratch + got);
      body_have_ += got;
    }
    if (in_body_ && body_have_ == body_length_) finish_body();
  }
}

void TlsSession::write_all(const uint8_t* data, size_t size) {
  while (size > 0) {
    const size_t chunk = std::min(size, kMaxWriteChunk);
    size_t written = 0;
    ERR_clear_error();
    if (SSL_write_ex(ssl_.get(), data, chunk, &written) != 1) {
      fail("cannot encrypt a message");
      throw SecureChannelError("TLS session with " + label() + " failed: " + failure_);
    }
    data += written;
    size -= written;
  }
}

void TlsSession::send_message(const Bytes& payload) {
  if (state_ != State::established) {
    throw SecureChannelError("cannot send to " + label() +
                             ": the TLS session is not established");
  }
  uint8_t prefix[kLengthPrefixBytes];
  uint64_t length = payload.size();
  for (size_t i = 0; i < kLengthPrefixBytes; ++i) prefix[i] = static_cast<uint8_t>(length >> (8 * i));
  if (payload.size() <= kCoalesceLimit) {
    uint8_t record[kLengthPrefixBytes + kCoalesceLimit];
    std::memcpy(record, prefix, kLengthPrefixBytes);
    if (!payload.empty()) std::memcpy(record + kLengthPrefixBytes, payload.data(), payload.size());
    write_all(record, kLengthPrefixBytes + payload.size());
    return;
  }
  // Room for the whole frame up front: 22 bytes of record overhead (header,
  // content type, AEAD tag) per 16 KiB record.
  const size_t records = payload.size() / 16384 + 2;
  buffers_.outgoing.reserve(kFrameHeaderBytes + buffers_.outgoing.size() + payload.size() +
                            records * 22 + 64);
  write_all(prefix, kLengthPrefixBytes);
  write_all(payload.data(), payload.size());
}

void TlsSession::close() {
  if (state_ != State::established) return;
  ERR_clear_error();
  SSL_shutdown(ssl_.get());
  drain_openssl_errors();
  state_ = State::closed;
}

std::optional<Bytes> TlsSession::take_outgoing_frame() {
  if (buffers_.outgoing.size() <= kFrameHeaderBytes) return std::nullopt;
  Bytes frame = std::move(buffers_.outgoing);
  buffers_.outgoing.clear();
  std::memcpy(frame.data(), kFrameMagic, sizeof kFrameMagic);
  frame[4] = static_cast<uint8_t>(kFrameVersion >> 8);
  frame[5] = static_cast<uint8_t>(kFrameVersion & 0xff);
  frame[6] = frame[7] = 0;
  return frame;
}

}  // namespace cleave::secure
