// The white-box inversion against the tiny random model and stories260K:
// exact without noise (through every codec, a binding clip and the site's
// adapters), and falling to chance as the noise grows. The comparisons with
// an attacker that ignores the prefix, the clip or the adapters are the
// mutation checks: an attack that ignored one of them would score as they do.
#include "audit/white_box_inversion.h"

#include <gtest/gtest.h>

#include "split/tensor_wire.h"
#include "tests/audit/audit_fixture.h"
#include "tests/support/test_adapters.h"

namespace cleave::audit {
namespace {

using test::observe;
using test::random_rows;
using test::recovery;

class WhiteBoxTiny : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = test::tiny_model("audit_white_box_" +
                              std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    rows_ = random_rows(model_->config().vocab_size, /*rows=*/3, /*length=*/21, /*seed=*/11);
  }
  // Recovery of the white-box attack that knows `attacker` of the channel the site used (`site`).
  double attack(const SmashedChannel& site, const SmashedChannel& attacker, WhiteBoxOptions options = {},
                const LinearAdapters* site_adapters = nullptr,
                const LinearAdapters* attacker_adapters = nullptr) {
    WhiteBoxInversion inversion(*model_, attacker_adapters, attacker, options);
    return recovery(rows_, inversion.invert(observe(*model_, site_adapters, rows_, site)));
  }
  double lookup(const SmashedChannel& channel) {
    WhiteBoxInversion inversion(*model_, nullptr, channel);
    return recovery(rows_, inversion.invert_without_context(observe(*model_, nullptr, rows_, channel)));
  }
  std::shared_ptr<LlamaModel> model_;
  std::vector<TokenRow> rows_;
};

SmashedChannel at_cut(int64_t cut_layer) {
  SmashedChannel channel;
  channel.cut_layer = cut_layer;
  return channel;
}

TEST_F(WhiteBoxTiny, RecoversEveryTokenWithoutNoise) {
  for (int64_t cut : {1, 2}) {
    EXPECT_GE(attack(at_cut(cut), at_cut(cut)), 0.99) << "cut " << cut;
  }
  // The prefix matters here: an attack that ignored it would do no better
  // than the context-free lookup.
  EXPECT_LE(lookup(at_cut(2)), 0.5);
}

TEST_F(WhiteBoxTiny, WidensUntilACandidateFits) {
  WhiteBoxOptions one;
  one.candidates = 1;
  one.language_candidates = 0;
  EXPECT_GE(attack(at_cut(2), at_cut(2), one), 0.99);
  one.max_candidates = 1;  // no widening: the table's first choice, checked with the prefix
  EXPECT_LE(attack(at_cut(2), at_cut(2), one), 0.5);
}

TEST_F(WhiteBoxTiny, ClipsItsCandidatesAsTheSiteDoes) {
  SmashedChannel clipped = at_cut(2);
  clipped.protection.clip = 0.3 * test::median_norm(*model_, rows_, 2);
  EXPECT_GE(attack(clipped, clipped), 0.99);
  EXPECT_LE(attack(clipped, at_cut(2)), 0.5) << "an attacker comparing unclipped candidates";
}

TEST_F(WhiteBoxTiny, ExactThroughEveryCodec) {
  for (const char* name : {"f16", "bf16", "int8", "int4"}) {
    SmashedChannel channel = at_cut(2);
    channel.codec = split::parse_codec(name);
    EXPECT_GE(attack(channel, channel), 0.99) << name;
  }
}

TEST_F(WhiteBoxTiny, RecoveryFallsWithNoise) {
  const double clip = test::median_norm(*model_, rows_, 2);
  std::vector<double> rates;
  for (double noise : {0.0, 0.03, 0.1, 0.3, 10.0}) {
    SmashedChannel channel = at_cut(2);
    channel.protection = {clip, noise, /*noise_seed=*/5};
    rates.push_back(attack(channel, channel));
  }
  EXPECT_GE(rates[0], 0.99);
  EXPECT_GE(rates[1], 0.9);
  for (size_t i = 1; i < rates.size(); ++i) EXPECT_LE(rates[i], rates[i - 1] + 0.05) << "noise level " << i;
  EXPECT_LE(rates[2], 0.8);
  // Near chance (1 in 61 random ids) at a noise 10 times the clip.
  EXPECT_LE(rates.back(), 0.1);
}

TEST_F(WhiteBoxTiny, KnowsTheSiteAdapters) {
  std::vector<const FrozenLinear*> bottom;
  for (const FrozenLinear* l : model_->linears()) {
    if (l->name.rfind("blk.0.", 0) == 0 || l->name.rfind("blk.1.", 0) == 0) bottom.push_back(l);
  }
  const cleave::test::TestAdapters adapters(bottom, /*r=*/4, /*seed=*/3);
  EXPECT_GE(attack(at_cut(2), at_cut(2), {}, &adapters, &adapters), 0.99);
  EXPECT_LE(attack(at_cut(2), at_cut(2), {}, &adapters, nullptr), 0.5) << "an attacker with the base only";
}

TEST(WhiteBoxStories, RecoversTinyStoriesWithoutNoise) {
  CLEAVE_REQUIRE_STORIES(stories);
  const std::vector<TokenRow> rows = rows_from_examples(stories.examples, 33, 64);
  for (int64_t cut : {1, 3}) {
    WhiteBoxInversion inversion(*stories.model, nullptr, at_cut(cut));
    const auto observed = observe(*stories.model, nullptr, rows, at_cut(cut));
    EXPECT_GE(recovery(rows, inversion.invert(observed)), 0.99) << "cut " << cut;
    if (cut == 3) {
      EXPECT_LE(recovery(rows, inversion.invert_without_context(observed)), 0.9)
          << "the prefix matters at cut 3";
    }
  }
}

TEST(WhiteBoxStories, NoiseHidesTokensAndTheBaseModelsPriorFindsSomeAgain) {
  CLEAVE_REQUIRE_STORIES(stories);
  const std::vector<TokenRow> rows = rows_from_examples(stories.examples, 33, 64);
  auto rate = [&](double noise, bool prior) {
    SmashedChannel channel = at_cut(2);
    channel.protection = {/*clip=*/5.0, noise, /*noise_seed=*/3};  // about the median token norm at cut 2
    WhiteBoxOptions options;
    options.language_prior = prior;
    WhiteBoxInversion inversion(*stories.model, nullptr, channel, options);
    return recovery(rows, inversion.invert(observe(*stories.model, nullptr, rows, channel)));
  };
  const double nearest = rate(0.2, false), posterior = rate(0.2, true);
  EXPECT_LE(nearest, 0.9);
  EXPECT_GE(posterior, nearest + 0.1) << "nearest " << nearest;
  EXPECT_LE(rate(5.0, true), 0.1);  // the prior alone guesses a few of the commonest tokens
}

}  // namespace
}  // namespace cleave::audit
