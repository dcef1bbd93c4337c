// split::from_wire against lying peers: the shape is checked against the data
// before a tensor is allocated for it.
#include "split/tensor_wire.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "wire/error.h"

namespace cleave::split {
namespace {

// Regression (split_server_fuzz, crash a5839bea): a ForwardRequest whose
// smashed activations claim shape [0xf0000000001, 4, 32] (2^51 floats) with
// a few bytes of data. from_wire allocated the tensor before decoding, and
// the allocation failure escaped as c10::Error instead of a wire::WireError.
TEST(TensorWire, LyingShapeIsRefusedBeforeTheTensorIsAllocated) {
  wire::WireTensor lying;
  lying.dtype = wire::WireDType::F16;
  lying.shape = {0xf0000000001, 4, 32};
  lying.data.assign(64, 0);
  EXPECT_THROW(from_wire(lying, {-1, -1, 32}, "smashed activations"), wire::WireError);

  lying.shape = {1 << 20, 1 << 10, 32};  // within the element limit, no data behind it
  EXPECT_THROW(from_wire(lying, {-1, -1, 32}, "smashed activations"), wire::WireError);
}

TEST(TensorWire, ValidTensorsDecodeWithTheirShape) {
  at::Tensor smashed = at::arange(24, at::kFloat).view({2, 3, 4}) / 8.0;  // [batch, seq, hidden]
  const wire::WireTensor encoded = to_wire(smashed, wire::WireDType::F32);
  const at::Tensor decoded = from_wire(encoded, {-1, -1, 4}, "smashed activations");
  EXPECT_TRUE(at::equal(decoded, smashed));
  EXPECT_THROW(from_wire(encoded, {-1, -1, 5}, "smashed activations"), wire::WireError);
}

}  // namespace
}  // namespace cleave::split
