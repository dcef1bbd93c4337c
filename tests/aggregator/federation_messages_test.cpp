// Every federation message survives a round trip through a wire frame, sits
// in the 0x02xx type range, and malformed frames are refused.
#include "aggregator/federation_messages.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "aggregator/named_tensors_wire.h"
#include "split/split_messages.h"

namespace cleave::aggregator {
namespace {

constexpr size_t kMax = 1 << 20;

template <class M>
M round_trip(FederationMessage type, const M& message) {
  const net::Bytes frame = pack_message(type, message);
  EXPECT_EQ(peek_message(frame), type);
  return unpack_message<M>(frame, type, kMax);
}

NamedTensors two_tensors() {
  return {{"blk.0.attn_q.weight.lora_a", at::arange(8, at::kFloat).view({2, 4}) / 3},
          {"blk.0.attn_q.weight.lora_b", at::arange(6, at::kFloat).view({3, 2}) - 2.5}};
}

TEST(FederationMessages, TypeIdsLiveIn0x02xxAndHaveNames) {
  for (FederationMessage type :
       {FederationMessage::register_client, FederationMessage::register_reply, FederationMessage::round_request,
        FederationMessage::round_assignment, FederationMessage::wait, FederationMessage::finished,
        FederationMessage::update, FederationMessage::update_ack, FederationMessage::error}) {
    EXPECT_EQ(static_cast<uint16_t>(type) >> 8, 0x02);
    EXPECT_STRNE(message_name(type), "unknown");
  }
  EXPECT_STREQ(message_name(static_cast<FederationMessage>(0x0107)), "unknown");
}

TEST(FederationMessages, RegisterPollAndRepliesRoundTrip) {
  const Register hello = round_trip(FederationMessage::register_client, Register{"site-7", "dim=4 layers=1", 123});
  EXPECT_EQ(hello.client_id, "site-7");
  EXPECT_EQ(hello.base_fingerprint, "dim=4 layers=1");
  EXPECT_EQ(hello.num_samples, 123);
  const RegisterReply reply = round_trip(FederationMessage::register_reply, RegisterReply{4, 10});
  EXPECT_EQ(reply.round, 4u);
  EXPECT_EQ(reply.total_rounds, 10u);
  EXPECT_EQ(round_trip(FederationMessage::round_request, RoundRequest{"site-7"}).client_id, "site-7");
  EXPECT_EQ(round_trip(FederationMessage::wait, Wait{250}).retry_after_ms, 250u);
  const Finished finished = round_trip(FederationMessage::finished, Finished{3, true, "deadline"});
  EXPECT_EQ(finished.rounds_completed, 3u);
  EXPECT_TRUE(finished.failed);
  EXPECT_EQ(finished.reason, "deadline");
  const UpdateAck ack = round_trip(FederationMessage::update_ack, UpdateAck{2, false, "duplicate"});
  EXPECT_EQ(ack.round, 2u);
  EXPECT_FALSE(ack.accepted);
  EXPECT_EQ(ack.reason, "duplicate");
  EXPECT_EQ(round_trip(FederationMessage::error, FederationErrorReply{"bad"}).message, "bad");
}

// Register as sites sent it before it carried their lora rank and alpha.
struct RegisterWithoutLora {
  std::string client_id, base_fingerprint;
  int64_t num_samples = 0;
  uint8_t layout = 0;
  int32_t cut_layer = 0, top_cut = 0;
  template <class Archive>
  void serialize(Archive& ar) { ar(client_id, base_fingerprint, num_samples, layout, cut_layer, top_cut); }
};

TEST(FederationMessages, RegisterCarriesTheSitesLoraRankAndReadsOldFramesAsTheAggregators) {
  const Register hello =
      round_trip(FederationMessage::register_client, Register{"site-7", "fp", 12, 2, 1, 3, /*rank*/ 4, /*alpha*/ 8.5});
  EXPECT_EQ(hello.top_cut, 3);
  EXPECT_EQ(hello.lora_rank, 4);
  EXPECT_EQ(hello.lora_alpha, 8.5);
  const net::Bytes old =
      pack_message(FederationMessage::register_client, RegisterWithoutLora{"site-8", "fp", 5, 2, 1, 3});
  const Register read = unpack_message<Register>(old, FederationMessage::register_client, kMax);
  EXPECT_EQ(read.client_id, "site-8");
  EXPECT_EQ(read.top_cut, 3);
  EXPECT_EQ(read.lora_rank, 0) << "0: the aggregator's";
  EXPECT_EQ(read.lora_alpha, 0.0);
  // Half a lora field is still a truncated frame.
  net::Bytes cut = pack_message(FederationMessage::register_client, Register{"site-9", "fp", 5, 0, 0, 0, 4, 8.0});
  cut.resize(cut.size() - 3);
  EXPECT_THROW(unpack_message<Register>(cut, FederationMessage::register_client, kMax), wire::WireError);
}

TEST(FederationMessages, AssignmentAndUpdateCarryTensorsExactly) {
  const NamedTensors tensors = two_tensors();
  RoundAssignment assignment;
  assignment.round = 5;
  assignment.adapters = encode_tensors(tensors);
  assignment.config = RoundConfig{12, 0.01, 3e-4, 0.75};
  assignment.deadline_ms = 60000;
  const RoundAssignment got = round_trip(FederationMessage::round_assignment, assignment);
  EXPECT_EQ(got.round, 5u);
  EXPECT_EQ(got.config.local_steps, 12);
  EXPECT_EQ(got.config.proximal_mu, 0.01);
  EXPECT_EQ(got.config.lr, 3e-4);
  EXPECT_EQ(got.config.clip_norm, 0.75);
  EXPECT_EQ(got.deadline_ms, 60000);
  const NamedTensors decoded = decode_tensors(got.adapters, tensors, "assignment");
  for (const auto& [name, tensor] : tensors) EXPECT_TRUE(at::equal(decoded.at(name), tensor)) << name;

  Update update{"site-1", 5, encode_tensors(tensors), 77, {{"train_loss", 2.5}, {"eval_perplexity", 11.0}}};
  const Update back = round_trip(FederationMessage::update, update);
  EXPECT_EQ(back.client_id, "site-1");
  EXPECT_EQ(back.round, 5u);
  EXPECT_EQ(back.num_samples, 77);
  EXPECT_EQ(back.metrics, update.metrics);
  EXPECT_EQ(back.delta.size(), 2u);
}

TEST(FederationMessages, MalformedFramesAreRefused) {
  const net::Bytes frame = pack_message(FederationMessage::wait, Wait{5});
  EXPECT_THROW(unpack_message<RoundRequest>(frame, FederationMessage::round_request, kMax), wire::WireError);
  net::Bytes truncated = pack_message(FederationMessage::register_client, Register{"abc", "fp", 1});
  truncated.pop_back();
  EXPECT_THROW(unpack_message<Register>(truncated, FederationMessage::register_client, kMax), wire::WireError);
  net::Bytes bad_magic = frame;
  bad_magic[0] ^= 0xFF;
  EXPECT_THROW(peek_message(bad_magic), wire::WireError);
  EXPECT_THROW(unpack_message<Wait>(frame, FederationMessage::wait, 4), wire::WireError) << "size limit";
}

TEST(FederationMessages, DecodingChecksNamesAndShapesAgainstTheReference) {
  const NamedTensors reference = two_tensors();
  WireTensors missing = encode_tensors(reference);
  missing.erase("blk.0.attn_q.weight.lora_b");
  EXPECT_THROW(decode_tensors(missing, reference, "delta"), wire::WireError);
  WireTensors extra = encode_tensors(reference);
  extra["blk.1.attn_q.weight.lora_a"] = extra.begin()->second;
  EXPECT_THROW(decode_tensors(extra, reference, "delta"), wire::WireError);
  NamedTensors misshapen = reference;
  misshapen["blk.0.attn_q.weight.lora_a"] = at::zeros({4, 2});
  try {
    decode_tensors(encode_tensors(misshapen), reference, "delta of site-x");
    FAIL() << "a [4, 2] tensor was accepted where [2, 4] is expected";
  } catch (const wire::WireError& e) {
    EXPECT_NE(std::string(e.what()).find("delta of site-x tensor blk.0.attn_q.weight.lora_a"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace cleave::aggregator
