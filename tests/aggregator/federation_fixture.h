// Helpers for aggregator service tests: small synthetic global adapters (no
// model needed) and a scripted site that talks to AggregatorService::handle
// directly, so a test drives every message and the clock itself.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "aggregator/aggregator_service.h"
#include "aggregator/federation_messages.h"
#include "aggregator/named_tensors_wire.h"
#include "util/clock.h"

namespace cleave::test {

using aggregator::FederationMessage;
using aggregator::NamedTensors;

constexpr const char* kTestFingerprint = "dim=4 layers=1 heads=1/1 ffn=8 vocab=16";

// Two LoRA pairs with fixed seeded values.
inline aggregator::GlobalAdapters small_global(uint64_t seed = 3) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  aggregator::GlobalAdapters global;
  global.base_fingerprint = kTestFingerprint;
  global.lora.rank = 2;
  global.lora.alpha = 4;
  global.lora.targets = {"q", "v"};
  global.tensors["blk.0.attn_q.weight.lora_a"] = at::randn({2, 4}, gen);  // [r, in]
  global.tensors["blk.0.attn_q.weight.lora_b"] = at::randn({4, 2}, gen);  // [out, r]
  global.tensors["blk.0.attn_v.weight.lora_a"] = at::randn({2, 4}, gen);
  global.tensors["blk.0.attn_v.weight.lora_b"] = at::randn({3, 2}, gen);
  return global;
}

// A delta shaped like `global`, deterministic in (seed).
inline NamedTensors seeded_delta(const NamedTensors& global, uint64_t seed, double scale = 0.1) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  NamedTensors delta;
  for (const auto& [name, tensor] : global) delta[name] = at::randn(tensor.sizes(), gen) * scale;
  return delta;
}

struct Reply {
  FederationMessage type = FederationMessage::error;
  net::Bytes frame;
  template <class M>
  M as(FederationMessage expected) const {
    EXPECT_EQ(type, expected) << "got " << aggregator::message_name(type) << ": " << error_text();
    return aggregator::unpack_message<M>(frame, expected, 1u << 30);
  }
  std::string error_text() const {
    if (type != FederationMessage::error) return "";
    return aggregator::unpack_message<aggregator::FederationErrorReply>(frame, FederationMessage::error, 1u << 30)
        .message;
  }
};

class ScriptedSite {
 public:
  ScriptedSite(aggregator::AggregatorService& service, std::string id)
      : service_(service), id_(std::move(id)) {}

  const std::string& id() const { return id_; }

  Reply send(const net::Bytes& frame) {
    Reply reply;
    reply.frame = service_.handle("peer-" + id_, frame);
    reply.type = aggregator::peek_message(reply.frame);
    return reply;
  }
  Reply register_site(const std::string& fingerprint = kTestFingerprint, int64_t samples = 10) {
    return send(aggregator::pack_message(FederationMessage::register_client,
                                         aggregator::Register{id_, fingerprint, samples}));
  }
  Reply poll() {
    return send(aggregator::pack_message(FederationMessage::round_request, aggregator::RoundRequest{id_}));
  }
  Reply send_update(uint32_t round, const aggregator::WireTensors& delta, int64_t samples,
                    std::map<std::string, double> metrics = {}) {
    aggregator::Update update{id_, round, delta, samples, std::move(metrics)};
    return send(aggregator::pack_message(FederationMessage::update, update));
  }
  Reply send_update(uint32_t round, const NamedTensors& delta, int64_t samples,
                    std::map<std::string, double> metrics = {}) {
    return send_update(round, aggregator::encode_tensors(delta), samples, std::move(metrics));
  }
  // Polls and returns the assignment's global adapters (fails the test otherwise).
  NamedTensors take_assignment(const NamedTensors& reference, uint32_t expected_round) {
    const auto assignment = poll().as<aggregator::RoundAssignment>(FederationMessage::round_assignment);
    EXPECT_EQ(assignment.round, expected_round);
    return aggregator::decode_tensors(assignment.adapters, reference, "assignment");
  }

 private:
  aggregator::AggregatorService& service_;
  std::string id_;
};

// A wire tensor holding a NaN (wire::encode refuses to make one).
inline wire::WireTensor nan_tensor(std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> values(static_cast<size_t>(n), 0.5f);
  values[0] = std::numeric_limits<float>::quiet_NaN();
  wire::WireTensor tensor;
  tensor.shape = std::move(shape);
  tensor.data.resize(values.size() * 4);
  std::memcpy(tensor.data.data(), values.data(), tensor.data.size());   // little-endian host
  return tensor;
}

inline void expect_tensors_equal(const NamedTensors& a, const NamedTensors& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(at::equal(tensor, b.at(name))) << name << " differs: max |diff| "
                                               << (tensor - b.at(name)).abs().max().item<double>();
  }
}

inline void expect_tensors_near(const NamedTensors& a, const NamedTensors& b, double tolerance) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_LE((tensor.to(at::kDouble) - b.at(name).to(at::kDouble)).abs().max().item<double>(), tolerance)
        << name;
  }
}

// An aggregator service on a manual clock that keeps its log lines.
struct ServiceHarness {
  explicit ServiceHarness(aggregator::AggregatorOptions options,
                          aggregator::GlobalAdapters initial = small_global())
      : clock(std::make_shared<ManualClock>(1000)),
        service(std::move(options), std::move(initial), [this](const std::string& line) { log.push_back(line); },
                clock) {}
  std::shared_ptr<ManualClock> clock;
  std::vector<std::string> log;
  aggregator::AggregatorService service;
};

}  // namespace cleave::test
