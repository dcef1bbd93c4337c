// Golden tests of the base model on stories260K against llama.cpp's outputs
// (../shared/models/README.md and stories260K.prompt_logits.txt).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "model/model_loader.h"
#include "tests/support/shared_data.h"

namespace cleave {
namespace {

const std::vector<int64_t> kPrompt = {1, 403, 407, 261, 378};
const std::vector<int64_t> kGreedy = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426,
                                      338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322,
                                      265, 282, 295, 433, 426, 385, 328, 432, 358, 394};

// "pos N:" followed by 512 numbers, for each prompt position.
std::vector<std::vector<float>> read_reference_logits(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<float>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("pos ", 0) != 0) continue;
    std::istringstream fields(line.substr(line.find(':') + 1));
    std::vector<float> row;
    float v;
    while (fields >> v) row.push_back(v);
    rows.push_back(row);
  }
  return rows;
}

at::Tensor tokens_tensor(const std::vector<int64_t>& ids) {
  return at::tensor(ids, at::kLong).unsqueeze(0);  // [1, T]
}

TEST(LlamaGolden, PromptLogitsMatchLlamaCpp) {
  CLEAVE_REQUIRE_SHARED(model_path, "models/stories260K.gguf");
  CLEAVE_REQUIRE_SHARED(logits_path, "models/stories260K.prompt_logits.txt");
  auto model = load_llama(model_path, BaseQuant::none);
  const auto reference = read_reference_logits(logits_path);
  ASSERT_EQ(reference.size(), kPrompt.size());

  at::NoGradGuard no_grad;
  at::Tensor logits = model->forward(tokens_tensor(kPrompt), nullptr)[0];  // [T, vocab]
  ASSERT_EQ(logits.size(1), 512);
  double max_diff = 0;
  for (size_t pos = 0; pos < kPrompt.size(); ++pos) {
    ASSERT_EQ(reference[pos].size(), 512u);
    at::Tensor expected = at::tensor(reference[pos], at::kFloat);
    max_diff = std::max(max_diff, (logits[pos] - expected).abs().max().item<double>());
  }
  EXPECT_LT(max_diff, 1e-4) << "largest logit difference against llama.cpp";
  EXPECT_NEAR(logits[4][432].item<float>(), 17.799397f, 1e-4);
}

TEST(LlamaGolden, GreedyContinuationMatchesLlamaCpp) {
  CLEAVE_REQUIRE_SHARED(model_path, "models/stories260K.gguf");
  auto model = load_llama(model_path, BaseQuant::none);
  at::NoGradGuard no_grad;
  std::vector<int64_t> ids = kPrompt;
  for (size_t i = 0; i < kGreedy.size(); ++i) {
    at::Tensor logits = model->forward(tokens_tensor(ids), nullptr);
    ids.push_back(logits[0][-1].argmax().item<int64_t>());
  }
  const std::vector<int64_t> continuation(ids.begin() + kPrompt.size(), ids.end());
  EXPECT_EQ(continuation, kGreedy);
}

TEST(LlamaGolden, QuantizedBasesStayCloseToFloat) {
  CLEAVE_REQUIRE_SHARED(model_path, "models/stories260K.gguf");
  at::NoGradGuard no_grad;
  at::Tensor tokens = tokens_tensor(kPrompt);
  at::Tensor reference = load_llama(model_path, BaseQuant::none)->forward(tokens, nullptr);
  at::Tensor int8 = load_llama(model_path, BaseQuant::int8)->forward(tokens, nullptr);
  at::Tensor q4 = load_llama(model_path, BaseQuant::q4)->forward(tokens, nullptr);
  const double int8_err = (int8 - reference).abs().mean().item<double>();
  std::printf("mean |logit error|: int8 %.4f, q4 %.4f\n", int8_err, (q4 - reference).abs().mean().item<double>());
  const double q4_err = (q4 - reference).abs().mean().item<double>();
  EXPECT_GT(int8_err, 0.0) << "int8 should not be bit-identical to float";
  EXPECT_LT(int8_err, 0.2);   // measured 0.07
  EXPECT_LT(q4_err, 1.5);     // measured 0.96: 4 bits hurt a 260K model
  EXPECT_LT(int8_err, q4_err);
  // The top token after the prompt survives quantization.
  EXPECT_EQ(int8[0][-1].argmax().item<int64_t>(), 432);
}

}  // namespace
}  // namespace cleave
