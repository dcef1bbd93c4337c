#include "split/tensor_wire.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "metrics/cost_meter.h"

namespace cleave::split {

wire::WireTensor to_wire(const at::Tensor& tensor, wire::WireDType codec, wire::Rounding rounding) {
  metrics::PhaseScope phase(metrics::Phase::codec);   // charged to the calling role
  // the codecs read CPU float32: a GPU or bf16 tensor is copied over first
  at::Tensor t = tensor.detach().to(at::kCPU, at::kFloat).contiguous();
  return wire::encode(t.data_ptr<float>(), t.sizes().vec(), codec, rounding);
}

wire::Rounding step_rounding(bool stochastic, const std::string& client_id, uint32_t round, uint64_t step,
                             TensorStream stream) {
  if (!stochastic) return {};
  uint64_t seed = 0xcbf29ce484222325ull;   // FNV-1a over the client id, then the numbers
  for (unsigned char c : client_id) seed = (seed ^ c) * 0x100000001b3ull;
  for (uint64_t word : {static_cast<uint64_t>(round), step, static_cast<uint64_t>(stream)}) {
    seed = (seed ^ word) * 0x100000001b3ull;
  }
  return {true, seed};
}

at::Tensor from_wire(const wire::WireTensor& tensor, const std::vector<int64_t>& expected,
                     const char* what) {
  bool ok = tensor.shape.size() == expected.size();
  for (size_t i = 0; ok && i < expected.size(); ++i) {
    ok = expected[i] < 0 || expected[i] == tensor.shape[i];
  }
  if (!ok) {
    throw wire::WireError(std::string(what) + " has shape " + c10::str(tensor.shape) +
                          ", expected " + c10::str(expected) + " (-1: any)");
  }
  metrics::PhaseScope phase(metrics::Phase::codec);
  // Shape and data size checked before allocating: a lying shape must get an
  // error reply, not an allocation of its product (found by split_server_fuzz).
  wire::checked_element_count(tensor);
  at::Tensor values = at::empty(tensor.shape, at::kFloat);   // decoded in place: no intermediate copy
  wire::decode_into(tensor, values.data_ptr<float>());
  return values;
}

wire::WireDType parse_codec(const std::string& name) {
  if (name == "f32" || name == "float32") return wire::WireDType::F32;
  if (name == "f16" || name == "float16") return wire::WireDType::F16;
  if (name == "bf16" || name == "bfloat16") return wire::WireDType::BF16;
  if (name == "int8") return wire::WireDType::I8_ROWSCALE;
  if (name == "int4") return wire::WireDType::I4_GROUP;
  throw std::invalid_argument("unknown codec '" + name + "': expected one of f32, f16, bf16, int8, int4");
}

}  // namespace cleave::split
