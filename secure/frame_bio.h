// A BIO that lets OpenSSL write TLS records straight into the frame we are
// about to send and read them straight out of the frame we received, so a
// large message is not copied through BIO_s_mem's growing buffer on the way.
#pragma once

#include <openssl/bio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cleave::secure {

struct FrameBuffers {
  // Records for the peer, after `outgoing_reserve` leading bytes kept for
  // the frame header. Empty when nothing is pending.
  std::vector<uint8_t> outgoing;
  size_t outgoing_reserve = 0;
  // The records being fed to OpenSSL (borrowed for one receive_frame call).
  const uint8_t* incoming = nullptr;
  size_t incoming_size = 0;
  size_t incoming_pos = 0;
};

// A new BIO over `buffers` (which must outlive it). An empty input reads as
// "retry later", never as end of stream.
BIO* new_frame_bio(FrameBuffers* buffers);

}  // namespace cleave::secure
