// The learned inversion: trained on public text through the same channel,
// it beats chance on text it has not seen, deterministically for a seed.
#include "audit/learned_inversion.h"

#include <gtest/gtest.h>

#include "tests/audit/audit_fixture.h"

namespace cleave::audit {
namespace {

using test::observe;
using test::recovery;

std::vector<TokenRow> predict(const LearnedInversion& learned, const std::vector<at::Tensor>& observed) {
  std::vector<TokenRow> out;
  for (const at::Tensor& row : observed) out.push_back(learned.predict(row));
  return out;
}

// Features [N, dim] and labels [N] of `rows` as received over `channel`.
std::pair<at::Tensor, at::Tensor> training_set(const LlamaModel& model, const std::vector<TokenRow>& rows,
                                               const SmashedChannel& channel) {
  std::vector<int64_t> labels;
  for (const TokenRow& row : rows) labels.insert(labels.end(), row.begin(), row.end());
  return {at::cat(observe(model, nullptr, rows, channel), 0), at::tensor(labels, at::kLong)};
}

TEST(LearnedInversion, BeatsChanceOnTheTinyModel) {
  const auto model = test::tiny_model("audit_learned_tiny");
  SmashedChannel channel;
  const auto [features, labels] =
      training_set(*model, test::random_rows(model->config().vocab_size, 40, 33, /*seed=*/1), channel);
  LearnedInversionOptions options;
  options.steps = 150;
  const LearnedInversion learned =
      LearnedInversion::train(features, labels, model->config().vocab_size, options);
  const auto site = test::random_rows(model->config().vocab_size, 4, 33, /*seed=*/2);
  // Chance is 1 in 61 random ids.
  EXPECT_GE(recovery(site, predict(learned, observe(*model, nullptr, site, channel))), 0.15);
}

TEST(LearnedInversion, SameSeedSameModel) {
  const auto model = test::tiny_model("audit_learned_seed");
  const auto [features, labels] = training_set(
      *model, test::random_rows(model->config().vocab_size, 8, 17, /*seed=*/1), SmashedChannel{});
  LearnedInversionOptions options;
  options.steps = 20;
  const at::Tensor probe = features.slice(0, 0, 16);
  const at::Tensor a = LearnedInversion::train(features, labels, 64, options).logits(probe);
  const at::Tensor b = LearnedInversion::train(features, labels, 64, options).logits(probe);
  EXPECT_TRUE(at::equal(a, b));
  options.seed = 2;
  EXPECT_FALSE(at::equal(a, LearnedInversion::train(features, labels, 64, options).logits(probe)));
}

TEST(LearnedInversion, BeatsChanceOnTinyStoriesAtCut1) {
  CLEAVE_REQUIRE_STORIES(stories);
  // The site's records come first in the file, the attacker's public text after them.
  const std::vector<data::Example> site_examples(stories.examples.begin(), stories.examples.begin() + 4);
  const std::vector<data::Example> public_examples(stories.examples.begin() + 4, stories.examples.end());
  const std::vector<TokenRow> site = rows_from_examples(site_examples, 64, 128);
  const std::vector<TokenRow> public_rows = rows_from_examples(public_examples, 64, 4096);
  SmashedChannel channel;
  const auto [features, labels] = training_set(*stories.model, public_rows, channel);
  LearnedInversionOptions options;
  options.steps = 150;
  const LearnedInversion learned =
      LearnedInversion::train(features, labels, stories.model->config().vocab_size, options);
  // The most frequent token of the public text is right on about 2% of
  // the site's; at cut 1 the activation still says which token it was.
  EXPECT_GE(recovery(site, predict(learned, observe(*stories.model, nullptr, site, channel))), 0.8);
}

}  // namespace
}  // namespace cleave::audit
