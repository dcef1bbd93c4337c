// libFuzzer target: request frames from an untrusted client into
// split::SplitServer::handle on a tiny random Llama (3 blocks, dim 32, vocab
// 64). handle() promises that bad input never throws: it answers with an
// error frame. So every reply must be a well-formed frame, and a crash, an
// escaping exception or a sanitizer report is a finding.
//
// Input: one mode byte, then request frames glued together (cut at each
// "CVLE", the frame magic). Before them the harness sends a valid Hello for
// client "fuzz-site" (the fuzzer cannot know the model's fingerprint):
//   mode bit 0   0 vanilla (cut 1), 1 U-shaped (cut 1, top 2)
//   mode bit 1   0 SFL-V1, 1 SFL-V2
//   mode bits 2-3  activation codec, bits 4-5 gradient codec (wire::WireDType)
//   mode bit 6   activation codec i4_group instead, bit 7 gradient codec i4_group
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdlib>
#include <memory>

#include "fuzz/fuzz_support.h"
#include "lora/adapter_set.h"
#include "model/model_loader.h"
#include "model/model_writer.h"
#include "split/split_messages.h"
#include "split/split_server.h"
#include "wire/frame.h"

namespace {

using namespace cleave;

std::shared_ptr<const LlamaModel> tiny_model() {
  static const std::shared_ptr<const LlamaModel> model = [] {
    LlamaConfig config;
    config.vocab_size = fuzz::kModelVocab;
    config.dim = fuzz::kModelDim;
    config.n_layers = 3;
    config.n_heads = 4;
    config.n_kv_heads = 2;
    config.head_dim = 8;
    config.rope_dims = 8;
    config.ffn_dim = 48;
    config.context_length = 64;
    const std::string path = fuzz::temporary_directory("cleave-split-fuzz") + "/tiny.gguf";
    write_llama_gguf(path, config, random_llama_weights(config, 7), nullptr);
    return std::shared_ptr<const LlamaModel>(load_llama(path, BaseQuant::none));
  }();
  return model;
}

split::SplitServerOptions server_options(bool sfl_v2) {
  split::SplitServerOptions options;
  options.variant = sfl_v2 ? split::ServerVariant::sfl_v2 : split::ServerVariant::sfl_v1;
  options.lora.rank = 2;
  options.max_message_bytes = 1 << 20;
  options.max_tokens_per_step = 256;  // keeps one step cheap
  return options;
}

// handle() must always answer with a frame a client can read.
void check_reply(const net::Bytes& reply) {
  try {
    (void)wire::peek(reply);
  } catch (const wire::WireError&) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  (void)tiny_model();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const auto model = tiny_model();
  split::SplitServer server(model, server_options(mode & 2), std::nullopt, [](const std::string&) {});

  split::Hello hello;
  hello.client_id = fuzz::kClientId;
  hello.base_fingerprint = model->base_fingerprint();
  hello.mode = mode & 1;
  hello.cut_layer = 1;
  hello.top_cut = 2;
  constexpr auto kI4 = static_cast<uint8_t>(wire::WireDType::I4_GROUP);
  hello.activation_codec = mode & 0x40 ? kI4 : (mode >> 2) & 3;
  hello.gradient_codec = mode & 0x80 ? kI4 : (mode >> 4) & 3;
  const net::Bytes hello_reply =
      server.handle("fuzz-peer", wire::pack(static_cast<uint16_t>(split::MessageType::hello), hello));
  if (wire::peek(hello_reply).type != static_cast<uint16_t>(split::MessageType::hello_reply)) {
    __builtin_trap();  // the harness's own Hello must be accepted
  }
  for (const net::Bytes& request : fuzz::split_at_magic(data + 1, size - 1, "CVLE")) {
    check_reply(server.handle("fuzz-peer", request));
  }
  return 0;
}
