// Writes the seed corpus: valid frames of every message type and small valid
// files of every format read from outside (GGUF, safetensors, JSON and JSONL,
// Hugging Face checkpoints), for each fuzz target, under DIR/<target>/
// (default fuzz/corpus). Deterministic except the TLS ClientHello seeds
// (fresh randomness and a throw-away CA each run). config_yaml_fuzz's seeds
// are committed YAML files, and scripts/fuzz.sh adds configs/ to them.
//
//   build-fuzz/bin/fuzz_seed_corpus fuzz/corpus
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "aggregator/federation_messages.h"
#include "fuzz/fuzz_support.h"
#include "lora/safetensors.h"
#include "model/gguf.h"
#include "model/gguf_quant.h"
#include "secagg/secagg_messages.h"
#include "secure/ca.h"
#include "secure/tls_session.h"
#include "split/split_messages.h"
#include "util/json.h"
#include "wire/frame.h"
#include "wire/tensor.h"

namespace {

using namespace cleave;
namespace fs = std::filesystem;

void write_seed(const fs::path& dir, const std::string& name, const net::Bytes& bytes) {
  fs::create_directories(dir);
  std::ofstream out(dir / (name + ".bin"), std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + (dir / name).string());
}

net::Bytes concat(std::initializer_list<net::Bytes> parts) {
  net::Bytes all;
  for (const net::Bytes& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

// Deterministic small values in [-1, 1] for `n` elements.
std::vector<float> wave(size_t n, float phase) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = std::sin(0.37f * static_cast<float>(i) + phase);
  return values;
}

wire::WireTensor tensor(std::vector<int64_t> shape, wire::WireDType dtype, float phase) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  const std::vector<float> values = wave(n, phase);
  return wire::encode(values.data(), std::move(shape), dtype);
}

template <class M>
net::Bytes frame(split::MessageType type, const M& message) {
  return wire::pack(static_cast<uint16_t>(type), message);
}

template <class M>
net::Bytes frame(aggregator::FederationMessage type, const M& message) {
  return wire::pack(static_cast<uint16_t>(type), message);
}

split::ForwardRequest forward(uint64_t step, bool with_labels, wire::WireDType dtype) {
  constexpr int64_t B = 1, T = 4;
  split::ForwardRequest request;
  request.key = {fuzz::kClientId, 0, step};
  request.smashed = tensor({B, T, fuzz::kModelDim}, dtype, static_cast<float>(step));
  if (with_labels) {
    for (int64_t i = 0; i < B * T; ++i) {
      request.targets.push_back(static_cast<int32_t>((7 * i + step) % fuzz::kModelVocab));
      request.weights.push_back(i == 0 ? 0.0f : 1.0f);
    }
  }
  request.lr = 1e-3;
  request.grad_clip = 1.0;
  return request;
}

void wire_decoder_seeds(const fs::path& dir) {
  using split::MessageType;
  const auto f32 = wire::WireDType::F32;
  write_seed(dir, "hello", frame(MessageType::hello,
                                 split::Hello{fuzz::kClientId, "0123abcd", 1, 1, 2, 1, 3}));
  write_seed(dir, "hello_reply", frame(MessageType::hello_reply, split::HelloReply{3, "0123abcd"}));
  write_seed(dir, "forward", frame(MessageType::forward, forward(0, true, f32)));
  write_seed(dir, "forward_i8", frame(MessageType::forward, forward(1, false, wire::WireDType::I8_ROWSCALE)));
  write_seed(dir, "forward_i4", frame(MessageType::forward, forward(2, false, wire::WireDType::I4_GROUP)));
  split::ForwardReply forward_reply{{fuzz::kClientId, 0, 0}, 4.1, 3, tensor({1, 4, 8}, wire::WireDType::F16, 1)};
  write_seed(dir, "forward_reply", frame(MessageType::forward_reply, forward_reply));
  write_seed(dir, "backward", frame(MessageType::backward,
                                    split::BackwardRequest{{fuzz::kClientId, 0, 0},
                                                           tensor({1, 4, 8}, wire::WireDType::BF16, 2)}));
  write_seed(dir, "backward_reply", frame(MessageType::backward_reply,
                                          split::BackwardReply{{fuzz::kClientId, 0, 0},
                                                               tensor({2, 3}, f32, 3)}));
  write_seed(dir, "end_round", frame(MessageType::end_round, split::EndRound{2, {{fuzz::kClientId, "site-b"}, {12, 30}}, "fedavg (lora separate)"}));
  write_seed(dir, "sync_round", frame(MessageType::sync_round, split::SyncRound{3, {{fuzz::kClientId}, {12}}, "fedavg (lora separate)"}));
  write_seed(dir, "sync_round_reply", frame(MessageType::sync_round_reply, split::SyncRoundReply{2, 3, 1}));
  write_seed(dir, "end_round_reply", frame(MessageType::end_round_reply, split::EndRoundReply{2, 5}));
  write_seed(dir, "error", frame(MessageType::error, split::ErrorReply{{fuzz::kClientId, 1, 2}, "bad"}));
  write_seed(dir, "generate_open",
             frame(MessageType::generate_open,
                   split::GenerateOpen{fuzz::kClientId, "0123abcd", 1, 1, 2, 0, 1, 64, {"blk.1.attn_q.weight"}}));
  write_seed(dir, "generate_open_reply",
             frame(MessageType::generate_open_reply, split::GenerateOpenReply{77, 4096, 3, "0123abcd"}));
  write_seed(dir, "generate_prefill", frame(MessageType::generate_prefill,
                                            split::GenerateInput{fuzz::kClientId, 77, 0, tensor({1, 4, 8}, f32, 4)}));
  write_seed(dir, "generate_step",
             frame(MessageType::generate_step,
                   split::GenerateInput{fuzz::kClientId, 77, 4, tensor({1, 1, 8}, wire::WireDType::I4_GROUP, 5)}));
  write_seed(dir, "generate_reply",
             frame(MessageType::generate_reply, split::GenerateOutput{77, 4, tensor({1, 1, 16}, f32, 6)}));
  write_seed(dir, "generate_close", frame(MessageType::generate_close, split::GenerateClose{fuzz::kClientId, 77}));
  write_seed(dir, "generate_close_reply",
             frame(MessageType::generate_close_reply, split::GenerateCloseReply{77, 5}));

  using aggregator::FederationMessage;
  aggregator::WireTensors adapters;
  adapters["blk.0.attn_q.weight.lora_a"] = tensor({2, 8}, f32, 4);
  adapters["blk.0.attn_q.weight.lora_b"] = tensor({8, 2}, f32, 5);
  write_seed(dir, "register", frame(FederationMessage::register_client,
                                    aggregator::Register{"site-a", "0123abcd", 100, /*u_shaped*/ 2, 1, 4,
                                                         /*lora_rank*/ 4, /*lora_alpha*/ 8.0}));
  write_seed(dir, "register_reply", frame(FederationMessage::register_reply, aggregator::RegisterReply{0, 5}));
  write_seed(dir, "round_request", frame(FederationMessage::round_request, aggregator::RoundRequest{"site-a"}));
  write_seed(dir, "round_assignment",
             frame(FederationMessage::round_assignment,
                   aggregator::RoundAssignment{1, adapters, aggregator::RoundConfig{10, 0.01, 1e-3, 0.5}, 60000}));
  write_seed(dir, "wait", frame(FederationMessage::wait, aggregator::Wait{250}));
  write_seed(dir, "finished", frame(FederationMessage::finished, aggregator::Finished{5, true, "stopped"}));
  write_seed(dir, "update", frame(FederationMessage::update,
                                  aggregator::Update{"site-a", 1, adapters, 100, {{"train_loss", 2.5}}}));
  write_seed(dir, "update_ack", frame(FederationMessage::update_ack, aggregator::UpdateAck{1, false, "late"}));
  write_seed(dir, "federation_error",
             frame(FederationMessage::error, aggregator::FederationErrorReply{"malformed"}));

  aggregator::RoundAssignment secure{2, adapters, aggregator::RoundConfig{10, 0, 1e-3, 0}, 60000};
  secure.secure.enabled = true;
  secure.secure.threshold = 2;
  secure.secure.sampled = {"site-a", "site-b", "site-c"};
  secure.secure.vector_length = 33;
  secure.secure.metric_names = {"train_loss"};
  secure.secure.metric_scale_bits = 16;
  write_seed(dir, "secure_round_assignment", frame(FederationMessage::round_assignment, secure));
  const secagg::Keys keys{"site-a", 2, std::string(32, 'c'), std::string(32, 'm'), "-----BEGIN CERTIFICATE-----",
                          std::string(71, 's')};
  write_seed(dir, "secagg_keys", frame(FederationMessage::secagg_keys, keys));
  write_seed(dir, "secagg_poll", frame(FederationMessage::secagg_poll, secagg::Poll{"site-a", 2, 1}));
  write_seed(dir, "secagg_peer_keys", frame(FederationMessage::secagg_peer_keys, secagg::PeerKeys{2, {keys, keys}}));
  write_seed(dir, "secagg_shares",
             frame(FederationMessage::secagg_shares, secagg::Shares{"site-a", 2, {{"site-b", std::string(116, 'b')}}}));
  write_seed(dir, "secagg_peer_shares",
             frame(FederationMessage::secagg_peer_shares, secagg::PeerShares{2, {{"site-b", std::string(116, 'b')}}}));
  write_seed(dir, "secagg_masked_input",
             frame(FederationMessage::secagg_masked_input,
                   secagg::MaskedInput{"site-a", 2, std::vector<uint64_t>(33, 0x0123456789abcdefull)}));
  write_seed(dir, "secagg_consistency_check",
             frame(FederationMessage::secagg_consistency_check, secagg::ConsistencyCheck{2, {"site-a", "site-b"}}));
  write_seed(dir, "secagg_consistency_signature",
             frame(FederationMessage::secagg_consistency_signature,
                   secagg::ConsistencySignature{"site-a", 2, std::string(71, 's')}));
  write_seed(dir, "secagg_unmask_request",
             frame(FederationMessage::secagg_unmask_request,
                   secagg::UnmaskRequest{2, {"site-a", "site-b"}, {"site-c"},
                                         {{"site-a", std::string(71, 's')}, {"site-b", std::string(71, 't')}}}));
  write_seed(dir, "secagg_unmask_shares",
             frame(FederationMessage::secagg_unmask_shares,
                   secagg::UnmaskShares{"site-a", 2, {{"site-a", std::string(44, 'x')}, {"site-b", std::string(44, 'y')}},
                                        {{"site-c", std::string(44, 'z')}}}));
  write_seed(dir, "secagg_abort", frame(FederationMessage::secagg_abort, secagg::Abort{2, "too few sites"}));
  write_seed(dir, "secagg_withdraw",
             frame(FederationMessage::secagg_withdraw, secagg::Withdraw{"site-a", 2, "local training failed"}));
}

void split_server_seeds(const fs::path& dir) {
  using split::MessageType;
  const auto f32 = wire::WireDType::F32;
  const net::Bytes vanilla = {0x00};
  write_seed(dir, "vanilla_two_steps_end_round",
             concat({vanilla, frame(MessageType::forward, forward(0, true, f32)),
                     frame(MessageType::forward, forward(0, true, f32)),  // repeated: from the store
                     frame(MessageType::forward, forward(1, true, wire::WireDType::F16)),
                     frame(MessageType::end_round, split::EndRound{0, {}})}));
  const net::Bytes u_shaped_v2 = {0x01 | 0x02 | (1 << 2) | (2 << 4)};
  split::BackwardRequest backward{{fuzz::kClientId, 0, 0}, tensor({1, 4, fuzz::kModelDim}, f32, 9)};
  write_seed(dir, "u_shaped_forward_backward",
             concat({u_shaped_v2, frame(MessageType::forward, forward(0, false, wire::WireDType::I8_ROWSCALE)),
                     frame(MessageType::backward, backward), frame(MessageType::backward, backward),
                     frame(MessageType::end_round, split::EndRound{0, {}})}));
  // u_shaped SFL-V1 with int4 both ways; a tensor of 3 x 5 (an odd count, a
  // short group) for the decoder to chew on.
  const net::Bytes u_shaped_i4 = {0x01 | 0x40 | 0x80};
  split::BackwardRequest backward_i4{{fuzz::kClientId, 0, 0},
                                     tensor({1, 4, fuzz::kModelDim}, wire::WireDType::I4_GROUP, 5)};
  write_seed(dir, "u_shaped_int4",
             concat({u_shaped_i4, frame(MessageType::forward, forward(0, false, wire::WireDType::I4_GROUP)),
                     frame(MessageType::backward, backward_i4),
                     frame(MessageType::forward, forward(1, false, wire::WireDType::I4_GROUP)),
                     frame(MessageType::backward, split::BackwardRequest{{fuzz::kClientId, 0, 1},
                                                                         tensor({3, 5}, wire::WireDType::I4_GROUP, 6)}),
                     frame(MessageType::end_round, split::EndRound{0, {}})}));
  write_seed(dir, "vanilla_hello_again",
             concat({vanilla, frame(MessageType::hello, split::Hello{"other", "wrong", 0, 1, 2, 0, 0}),
                     frame(MessageType::forward, forward(0, true, wire::WireDType::BF16))}));
}

void secure_channel_seeds(const fs::path& dir) {
  const std::string root = fuzz::temporary_directory("cleave-seed-corpus");
  secure::ca_init(root + "/ca", "seed-federation");
  secure::SecureChannelOptions options;
  options.identity = secure::ca_issue(root + "/ca", secure::NodeRole::client, "site-a", root + "/n").identity;
  options.allowed_peer_roles = {secure::NodeRole::split_server};
  secure::TlsContext context(secure::TlsContext::Side::client, options);
  secure::TlsSession session(context, "seed");
  const net::Bytes hello = *session.take_outgoing_frame();
  write_seed(dir, "raw_client_hello", concat({{0x00}, hello}));
  write_seed(dir, "raw_client_hello_three_peers", concat({{0x04}, hello, hello, hello}));

  // Authenticated mode: plaintext of the TLS stream, 8-byte little-endian
  // length prefixes then bodies; "CLTS" starts a new frame.
  auto prefix = [](uint64_t n) {
    net::Bytes p(8);
    for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(n >> (8 * i));
    return p;
  };
  const net::Bytes body = {'s', 'm', 'a', 's', 'h', 'e', 'd'};
  write_seed(dir, "tls_one_message", concat({{0x01}, prefix(body.size()), body}));
  write_seed(dir, "tls_two_messages_one_empty", concat({{0x01}, prefix(0), prefix(body.size()), body}));
  // A 4-byte body ("CLTS") in the next frame than its prefix.
  write_seed(dir, "tls_split_across_frames", concat({{0x01}, prefix(4), {'C', 'L', 'T', 'S'}}));
  write_seed(dir, "tls_over_limit", concat({{0x01}, prefix(uint64_t{1} << 40)}));
}

net::Bytes text_bytes(const std::string& text) { return net::Bytes(text.begin(), text.end()); }

net::Bytes file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return net::Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// `type`'s bytes for `n` values of wave(n, phase): quantized where gguf can
// write the type, else deterministic filler of the right size.
net::Bytes tensor_bytes(gguf::TensorType type, int64_t n, float phase) {
  net::Bytes bytes(gguf::row_bytes(type, n));
  if (gguf::can_quantize(type)) {
    gguf::quantize(type, wave(static_cast<size_t>(n), phase).data(), bytes.data(), n);
  } else {
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>((i * 37 + 11) & 0x3f);
  }
  return bytes;
}

// A one-block Llama (dim 32, 4 heads of 8, 2 kv heads, vocab 8) with a
// SentencePiece vocabulary, and a tensor of every type gguf dequantizes.
void gguf_seeds(const fs::path& dir) {
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::str("llama"));
  w.set("general.name", gguf::Value::str("fuzz-seed"));
  w.set("llama.context_length", gguf::Value::u32(64));
  w.set("llama.embedding_length", gguf::Value::u32(32));
  w.set("llama.block_count", gguf::Value::u32(1));
  w.set("llama.feed_forward_length", gguf::Value::u32(64));
  w.set("llama.attention.head_count", gguf::Value::u32(4));
  w.set("llama.attention.head_count_kv", gguf::Value::u32(2));
  w.set("llama.attention.layer_norm_rms_epsilon", gguf::Value::f32(1e-5f));
  w.set("llama.rope.freq_base", gguf::Value::f32(10000.0f));
  w.set("llama.rope.dimension_count", gguf::Value::u32(8));
  w.set("tokenizer.ggml.model", gguf::Value::str("llama"));
  w.set("tokenizer.ggml.tokens", gguf::Value::str_array({"<unk>", "<s>", "</s>", "\xE2\x96\x81the", "\xE2\x96\x81" "a",
                                                         "e", "t", "<0x41>"}));
  w.set("tokenizer.ggml.scores", gguf::Value::f32_array({0, 0, 0, -1, -2, -3, -4, 0}));
  w.set("tokenizer.ggml.token_type", gguf::Value::i32_array({2, 3, 3, 1, 1, 1, 1, 6}));
  w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(1));
  w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(2));
  w.set("tokenizer.ggml.unknown_token_id", gguf::Value::u32(0));
  w.set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(true));
  w.set("tokenizer.chat_template", gguf::Value::str("{% for m in messages %}{{ m.content }}{% endfor %}"));
  const std::vector<float> embd = wave(32 * 8, 0.5f), norm(32, 1.0f);
  w.add_f32("token_embd.weight", {32, 8}, embd.data());
  w.add_f32("output_norm.weight", {32}, norm.data());
  using T = gguf::TensorType;
  const std::pair<const char*, T> blocks[] = {
      {"blk.0.attn_q.weight", T::Q8_0}, {"blk.0.attn_k.weight", T::Q4_0}, {"blk.0.attn_v.weight", T::F16},
      {"blk.0.attn_output.weight", T::BF16}, {"blk.0.ffn_gate.weight", T::Q4_K}, {"blk.0.ffn_up.weight", T::Q6_K},
      {"blk.0.ffn_down.weight", T::Q5_K}, {"q4_1", T::Q4_1}, {"q5_0", T::Q5_0}, {"q5_1", T::Q5_1},
      {"q2_k", T::Q2_K}, {"q3_k", T::Q3_K}, {"iq4_nl", T::IQ4_NL}, {"iq4_xs", T::IQ4_XS}};
  float phase = 1.0f;
  for (const auto& [name, type] : blocks) {
    const int64_t n = gguf::block_size(type) == 1 ? 32 : gguf::block_size(type);
    const net::Bytes bytes = tensor_bytes(type, n, phase++);
    w.add_tensor(name, type, {n}, bytes.data(), bytes.size());
  }
  write_seed(dir, "llama_every_type", w.to_bytes());

  // Byte-level BPE (gpt2) metadata with merges, and no tensors.
  gguf::Writer bpe;
  bpe.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
  bpe.set("tokenizer.ggml.pre", gguf::Value::str("llama-bpe"));
  bpe.set("tokenizer.ggml.tokens", gguf::Value::str_array({"a", "b", "ab", "\xC4\xA0", "\xC4\xA0" "a", "<|eot_id|>"}));
  bpe.set("tokenizer.ggml.token_type", gguf::Value::i32_array({1, 1, 1, 1, 1, 3}));
  bpe.set("tokenizer.ggml.merges", gguf::Value::str_array({"a b", "\xC4\xA0 a"}));
  bpe.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(5));
  bpe.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(5));
  write_seed(dir, "gpt2_vocabulary", bpe.to_bytes());

  // Metadata of every value type, nested arrays included, and an alignment.
  gguf::Writer values(64);
  values.set("u8", gguf::Value::u8(7));
  values.set("i8", gguf::Value::i8(-7));
  values.set("u16", gguf::Value::u16(700));
  values.set("i16", gguf::Value::i16(-700));
  values.set("i64", gguf::Value::i64(-1));
  values.set("u64", gguf::Value::u64(uint64_t{1} << 40));
  values.set("f64", gguf::Value::f64(0.25));
  values.set("nested", gguf::Value::array(gguf::ValueType::ARRAY,
                                          {gguf::Value::i32_array({1, 2}), gguf::Value::i32_array({})}));
  const std::vector<float> one(4, 1.0f);
  values.add_f32("t", {2, 2}, one.data());
  write_seed(dir, "every_value_type", values.to_bytes());
}

void safetensors_seeds(const fs::path& dir) {
  const std::string path = fuzz::temporary_directory("cleave-seed-safetensors") + "/t.safetensors";
  const std::vector<float> f32 = wave(6, 0.0f);
  const std::vector<uint16_t> bf16 = {0x3f80, 0xbf80, 0x0000, 0x4000};
  const int64_t i64 = 42;
  safetensors::write(path,
                     {{"model.layers.0.self_attn.q_proj.weight", "F32", {2, 3}, f32.data(), 24},
                      {"model.norm.weight", "BF16", {4}, bf16.data(), 8},
                      {"step", "I64", {}, &i64, 8}},
                     {{"format", "pt"}});
  write_seed(dir, "three_tensors", file_bytes(path));
  safetensors::write(path, {}, {});
  write_seed(dir, "empty", file_bytes(path));
}

void json_dataset_seeds(const fs::path& dir) {
  json::Value text = json::Value::object();
  text.set("text", "Fever and a dry cough.\nRest and fluids.");
  json::Value pair = json::Value::object();
  pair.set("prompt", "What helps a cough?");
  pair.set("completion", " Honey \u00e9 \xF0\x9F\x8D\xAF and rest.");
  pair.set("source", int64_t{3});
  write_seed(dir, "jsonl_text_and_prompt", text_bytes(text.dump() + "\n\n" + pair.dump() + "\n"));
  write_seed(dir, "jsonl_bom_crlf", text_bytes("\xEF\xBB\xBF" + pair.dump() + "\r\n" + text.dump() + "\r\n"));
  write_seed(dir, "plain_text", text_bytes("First document,\nits second line.\n\n  \nSecond document.\n"));

  json::Value model = json::Value::object();
  model.set("type", "BPE");
  model.set("merges", json::Value(json::Array{json::Value("a b"), json::Value(json::Array{"ab", "c"})}));
  json::Value tokenizer = json::Value::object();
  tokenizer.set("model", model);
  json::Value bos = json::Value::object();
  bos.set("content", "<s>");
  tokenizer.set("bos_token", bos);
  tokenizer.set("numbers", json::Value(json::Array{json::Value(int64_t{9007199254740993}), json::Value(1e-300),
                                                  json::Value(-0.5), json::Value(uint64_t{18446744073709551615u})}));
  tokenizer.set("nested", json::parse(R"([[[{"a": [true, false, null]}]], "\u00e9\ud83d\ude00\n"])"));
  write_seed(dir, "tokenizer_like", text_bytes(tokenizer.dump(2)));
}

// A one-block Llama checkpoint as Hugging Face saves it (dim 8, 2 heads of 4,
// 1 kv head, ffn 16, vocab 16, tied embeddings), in the input format of
// hf_checkpoint_fuzz: "CLHF", a file number, the file.
void hf_checkpoint_seeds(const fs::path& dir) {
  enum File : uint8_t { config, model, tokenizer, tokenizer_config, index, shard1, shard2 };
  auto file = [](File which, const net::Bytes& bytes) {
    return concat({{'C', 'L', 'H', 'F', which}, bytes});
  };
  json::Value c = json::Value::object();
  c.set("architectures", json::Value(json::Array{"LlamaForCausalLM"}));
  c.set("hidden_size", int64_t{8});
  c.set("intermediate_size", int64_t{16});
  c.set("num_hidden_layers", int64_t{1});
  c.set("num_attention_heads", int64_t{2});
  c.set("num_key_value_heads", int64_t{1});
  c.set("vocab_size", int64_t{16});
  c.set("max_position_embeddings", int64_t{64});
  c.set("rms_norm_eps", 1e-5);
  c.set("rope_theta", 10000.0);
  c.set("tie_word_embeddings", true);
  c.set("hidden_act", "silu");
  c.set("torch_dtype", "float32");
  c.set("rope_scaling", nullptr);

  const std::string scratch = fuzz::temporary_directory("cleave-seed-hf");
  struct Spec {
    std::string name;
    std::vector<int64_t> shape;
  };
  const std::vector<Spec> specs = {{"model.embed_tokens.weight", {16, 8}},
                                   {"model.norm.weight", {8}},
                                   {"model.layers.0.input_layernorm.weight", {8}},
                                   {"model.layers.0.post_attention_layernorm.weight", {8}},
                                   {"model.layers.0.self_attn.q_proj.weight", {8, 8}},
                                   {"model.layers.0.self_attn.k_proj.weight", {4, 8}},
                                   {"model.layers.0.self_attn.v_proj.weight", {4, 8}},
                                   {"model.layers.0.self_attn.o_proj.weight", {8, 8}},
                                   {"model.layers.0.mlp.gate_proj.weight", {16, 8}},
                                   {"model.layers.0.mlp.up_proj.weight", {16, 8}},
                                   {"model.layers.0.mlp.down_proj.weight", {8, 16}}};
  std::vector<std::vector<float>> values;
  std::vector<safetensors::TensorData> first, second;
  json::Value weight_map = json::Value::object();
  for (size_t i = 0; i < specs.size(); ++i) {
    size_t n = 1;
    for (int64_t d : specs[i].shape) n *= static_cast<size_t>(d);
    values.push_back(wave(n, static_cast<float>(i)));
    const safetensors::TensorData t{specs[i].name, "F32", specs[i].shape, values.back().data(), n * sizeof(float)};
    (i < 4 ? first : second).push_back(t);
    weight_map.set(specs[i].name, i < 4 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
  }
  std::vector<safetensors::TensorData> all = first;
  all.insert(all.end(), second.begin(), second.end());
  safetensors::write(scratch + "/all", all, {{"format", "pt"}});
  safetensors::write(scratch + "/first", first, {{"format", "pt"}});
  safetensors::write(scratch + "/second", second, {{"format", "pt"}});
  json::Value index_json = json::Value::object();
  index_json.set("weight_map", weight_map);

  // SentencePiece-style tokenizer.json (BPE with byte fallback) and its config.
  json::Value vocab = json::Value::object();
  const char* const pieces[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "t", "h", "e", "th", "the",
                                "\xE2\x96\x81the", "<0x0A>", "a", "\xE2\x96\x81" "a"};
  for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); ++i) vocab.set(pieces[i], static_cast<int64_t>(i));
  json::Value bpe = json::Value::object();
  bpe.set("type", "BPE");
  bpe.set("unk_token", "<unk>");
  bpe.set("byte_fallback", true);
  bpe.set("vocab", vocab);
  bpe.set("merges", json::Value(json::Array{"t h", "th e", "\xE2\x96\x81 the", "\xE2\x96\x81 a"}));
  json::Value added = json::Value::array();
  for (int64_t id : {0, 1, 2}) {
    json::Value token = json::Value::object();
    token.set("id", id);
    token.set("content", pieces[id]);
    token.set("special", true);
    added.push_back(token);
  }
  json::Value tok = json::Value::object();
  tok.set("added_tokens", added);
  tok.set("normalizer", json::parse(R"({"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "\u2581"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]})"));
  tok.set("pre_tokenizer", nullptr);
  tok.set("model", bpe);
  json::Value tok_config = json::Value::object();
  tok_config.set("bos_token", "<s>");
  tok_config.set("eos_token", json::parse(R"({"content": "</s>"})"));
  tok_config.set("add_bos_token", true);
  tok_config.set("chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}");

  write_seed(dir, "llama_single_file",
             concat({file(config, text_bytes(c.dump(2))), file(model, file_bytes(scratch + "/all")),
                     file(tokenizer, text_bytes(tok.dump())), file(tokenizer_config, text_bytes(tok_config.dump()))}));
  write_seed(dir, "llama_two_shards",
             concat({file(config, text_bytes(c.dump())), file(index, text_bytes(index_json.dump(2))),
                     file(shard1, file_bytes(scratch + "/first")), file(shard2, file_bytes(scratch + "/second"))}));

  // Byte-level BPE (GPT-2 style) tokenizer.json.
  json::Value byte_vocab = json::Value::object();
  const char* const byte_pieces[] = {"a", "b", "ab", "\xC4\xA0", "\xC4\xA0" "a", "<|endoftext|>"};
  for (size_t i = 0; i < sizeof(byte_pieces) / sizeof(byte_pieces[0]); ++i) {
    byte_vocab.set(byte_pieces[i], static_cast<int64_t>(i));
  }
  json::Value byte_model = json::Value::object();
  byte_model.set("type", "BPE");
  byte_model.set("vocab", byte_vocab);
  byte_model.set("merges", json::Value(json::Array{json::Value(json::Array{"a", "b"}),
                                                   json::Value(json::Array{"\xC4\xA0", "a"})}));
  json::Value byte_tok = json::Value::object();
  byte_tok.set("pre_tokenizer", json::parse(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})"));
  byte_tok.set("model", byte_model);
  write_seed(dir, "byte_level_tokenizer", file(tokenizer, text_bytes(byte_tok.dump())));
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path out = argc > 1 ? argv[1] : "fuzz/corpus";
  try {
    wire_decoder_seeds(out / "wire_decoder_fuzz");
    split_server_seeds(out / "split_server_fuzz");
    secure_channel_seeds(out / "secure_channel_fuzz");
    gguf_seeds(out / "gguf_fuzz");
    safetensors_seeds(out / "safetensors_fuzz");
    json_dataset_seeds(out / "json_dataset_fuzz");
    hf_checkpoint_seeds(out / "hf_checkpoint_fuzz");
  } catch (const std::exception& error) {
    std::cerr << "fuzz_seed_corpus: " << error.what() << '\n';
    return 1;
  }
  std::cout << "seed corpus written to " << out.string() << '\n';
  return 0;
}
