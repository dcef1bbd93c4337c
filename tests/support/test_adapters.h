// A minimal LoRA-like LinearAdapters for model tests (which do not link
// lora/): y + dropout(x) A^T B^T with trainable A [r, in], B [out, r].
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

#include "model/frozen_linear.h"

namespace cleave::test {

class TestAdapters : public LinearAdapters {
 public:
  // Adapters with random A and B on `linears` (rank r), drawn from `seed`.
  TestAdapters(const std::vector<const FrozenLinear*>& linears, int64_t r, uint64_t seed,
               double dropout = 0.0)
      : dropout_(dropout) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    for (const FrozenLinear* l : linears) {
      const int64_t in = l->weight.in_features(), out = l->weight.out_features();
      pairs_[l->name] = {at::empty({r, in}).normal_(0.0, 0.2, gen).requires_grad_(),
                         at::empty({out, r}).normal_(0.0, 0.2, gen).requires_grad_()};
    }
  }

  at::Tensor add_delta(const std::string& base_name, const at::Tensor& x, const at::Tensor& y) const override {
    auto it = pairs_.find(base_name);
    if (it == pairs_.end()) return y;
    const at::Tensor input = dropout_ > 0 ? at::dropout(x, dropout_, /*train=*/true) : x;
    return y + at::matmul(at::matmul(input, it->second.first.t()), it->second.second.t());
  }
  bool adapts(const std::string& base_name) const override { return pairs_.count(base_name) > 0; }
  std::vector<at::Tensor> parameters_of(const std::string& base_name) const override {
    auto it = pairs_.find(base_name);
    if (it == pairs_.end()) return {};
    return {it->second.first, it->second.second};
  }

  // Every A and B, in name order.
  std::vector<at::Tensor> parameters() const {
    std::vector<at::Tensor> out;
    for (const auto& [name, pair] : pairs_) {
      out.push_back(pair.first);
      out.push_back(pair.second);
    }
    return out;
  }
  void zero_grad() {
    for (at::Tensor& p : parameters()) p.mutable_grad() = at::Tensor();
  }

 private:
  double dropout_;
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> pairs_;
};

}  // namespace cleave::test
