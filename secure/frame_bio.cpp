#include "secure/frame_bio.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "secure/openssl_handles.h"

namespace cleave::secure {

namespace {

FrameBuffers* buffers_of(BIO* bio) { return static_cast<FrameBuffers*>(BIO_get_data(bio)); }

int frame_write(BIO* bio, const char* data, size_t size, size_t* written) {
  BIO_clear_retry_flags(bio);
  FrameBuffers* buffers = buffers_of(bio);
  std::vector<uint8_t>& out = buffers->outgoing;
  if (out.empty()) out.resize(buffers->outgoing_reserve);
  out.insert(out.end(), reinterpret_cast<const uint8_t*>(data),
             reinterpret_cast<const uint8_t*>(data) + size);
  *written = size;
  return 1;
}

int frame_read(BIO* bio, char* data, size_t size, size_t* read) {
  BIO_clear_retry_flags(bio);
  FrameBuffers* buffers = buffers_of(bio);
  const size_t available = buffers->incoming_size - buffers->incoming_pos;
  if (available == 0) {
    BIO_set_retry_read(bio);
    *read = 0;
    return 0;
  }
  const size_t n = std::min(size, available);
  std::memcpy(data, buffers->incoming + buffers->incoming_pos, n);
  buffers->incoming_pos += n;
  *read = n;
  return 1;
}

long frame_ctrl(BIO* bio, int command, long, void*) {
  FrameBuffers* buffers = buffers_of(bio);
  switch (command) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING:
      return static_cast<long>(buffers->incoming_size - buffers->incoming_pos);
    case BIO_CTRL_WPENDING: return 0;  // written records are already "sent"
    default: return 0;
  }
}

int frame_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

using BioMethodPtr = OpensslPtr<BIO_METHOD, BIO_meth_free>;

const BIO_METHOD* frame_method() {
  static const BioMethodPtr method = [] {
    BioMethodPtr m(check_openssl(
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cleave frame"), "BIO_meth_new"));
    BIO_meth_set_write_ex(m.get(), frame_write);
    BIO_meth_set_read_ex(m.get(), frame_read);
    BIO_meth_set_ctrl(m.get(), frame_ctrl);
    BIO_meth_set_create(m.get(), frame_create);
    return m;
  }();
  return method.get();
}

}  // namespace

BIO* new_frame_bio(FrameBuffers* buffers) {
  BIO* bio = check_openssl(BIO_new(frame_method()), "BIO_new(cleave frame)");
  BIO_set_data(bio, buffers);
  return bio;
}

}  // namespace cleave::secure
