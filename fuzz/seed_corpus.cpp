// Writes the seed corpus: valid frames of every message type, for each fuzz
// target, under DIR/<target>/ (default fuzz/corpus). Deterministic except
// the TLS ClientHello seeds (fresh randomness and a throw-away CA each run).
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
#include "secagg/secagg_messages.h"
#include "secure/ca.h"
#include "secure/tls_session.h"
#include "split/split_messages.h"
#include "split/wire_frame.h"
#include "split/wire_tensor.h"

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
  write_seed(dir, "end_round", frame(MessageType::end_round, split::EndRound{2, {fuzz::kClientId, "site-b"}}));
  write_seed(dir, "sync_round", frame(MessageType::sync_round, split::SyncRound{3, {fuzz::kClientId}}));
  write_seed(dir, "sync_round_reply", frame(MessageType::sync_round_reply, split::SyncRoundReply{2, 3, 1}));
  write_seed(dir, "end_round_reply", frame(MessageType::end_round_reply, split::EndRoundReply{2, 5}));
  write_seed(dir, "error", frame(MessageType::error, split::ErrorReply{{fuzz::kClientId, 1, 2}, "bad"}));

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

}  // namespace

int main(int argc, char** argv) {
  const fs::path out = argc > 1 ? argv[1] : "fuzz/corpus";
  try {
    wire_decoder_seeds(out / "wire_decoder_fuzz");
    split_server_seeds(out / "split_server_fuzz");
    secure_channel_seeds(out / "secure_channel_fuzz");
  } catch (const std::exception& error) {
    std::cerr << "fuzz_seed_corpus: " << error.what() << '\n';
    return 1;
  }
  std::cout << "seed corpus written to " << out.string() << '\n';
  return 0;
}
