// run_audit as the command drives it, and the rows it audits.
#include "audit/audit_run.h"

#include <gtest/gtest.h>

#include <sstream>

#include "tests/audit/audit_fixture.h"

namespace cleave::audit {
namespace {

data::Example example(std::vector<TokenId> tokens) {
  data::Example e;
  e.tokens = std::move(tokens);
  e.loss_mask.assign(e.tokens.size() - 1, 1);
  return e;
}

TEST(RowsFromExamples, TakesEachRecordsFirstTokensUpToTheBudget) {
  const std::vector<data::Example> examples = {example({1, 5, 6, 7, 8, 2}), example({1, 9, 2}), example({1}),
                                               example({1, 10, 11, 12, 2})};
  // Rows of at most 4 tokens, 6 tokens after BOS in all.
  const std::vector<TokenRow> rows = rows_from_examples(examples, 4, 6);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], (TokenRow{1, 5, 6, 7}));
  EXPECT_EQ(rows[1], (TokenRow{1, 9, 2}));
  EXPECT_EQ(rows[2], (TokenRow{1, 10}));  // cut short to the budget; the lone BOS skipped
  EXPECT_EQ(count_scored(rows), 6);
  EXPECT_THROW(rows_from_examples(examples, 1, 6), std::invalid_argument);
}

TEST(CountRecovered, ScoresPositionsAfterTheFirst) {
  const std::vector<TokenRow> truth = {{1, 4, 5}, {1, 6}};
  EXPECT_EQ(count_scored(truth), 3);
  EXPECT_EQ(count_recovered(truth, {{9, 4, 0}, {1, 6}}), 2);  // position 0 never counts
}

TEST(RunAudit, ReportsEveryAttackAndTheBest) {
  const auto model = test::tiny_model("audit_run_report");
  const auto site = test::random_rows(model->config().vocab_size, 2, 17, /*seed=*/3);
  const auto public_rows = test::random_rows(model->config().vocab_size, 20, 33, /*seed=*/4);
  AuditOptions options;
  options.channel.cut_layer = 2;
  options.learned.steps = 30;
  std::ostringstream log;
  const AuditReport report = run_audit(*model, nullptr, site, public_rows, options, log);
  ASSERT_EQ(report.attacks.size(), 3u) << log.str();  // lookup, white-box, learned
  EXPECT_EQ(report.scored, 32);
  EXPECT_EQ(report.best().name, "white-box inversion");
  EXPECT_DOUBLE_EQ(report.best().rate(), 1.0);
  EXPECT_NE(log.str().find("learned inversion: "), std::string::npos) << log.str();

  // With noise the posterior attack runs too; without public text the learned one does not.
  options.channel.protection = {test::median_norm(*model, site, 2), 0.1, /*noise_seed=*/2};
  std::ostringstream noisy_log;
  const AuditReport noisy = run_audit(*model, nullptr, site, {}, options, noisy_log);
  ASSERT_EQ(noisy.attacks.size(), 3u) << noisy_log.str();
  EXPECT_EQ(noisy.attacks[2].name, "white-box inversion with the base model as prior");
  EXPECT_NE(noisy_log.str().find("learned inversion: skipped (no public text: give --public FILE)"),
            std::string::npos);
  EXPECT_NEAR(noisy.baseline_rate, 1.0 / 64, 1e-12);
}

TEST(RunAudit, RefusesABadChannel) {
  const auto model = test::tiny_model("audit_run_bad");
  const auto site = test::random_rows(model->config().vocab_size, 1, 5, /*seed=*/3);
  AuditOptions options;
  options.channel.cut_layer = 3;  // the tiny model has 3 blocks: nothing left for the server
  std::ostringstream log;
  try {
    run_audit(*model, nullptr, site, {}, options, log);
    FAIL() << "cut_layer 3 of 3 was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("split.cut_layer must be in [1, 2]"), std::string::npos) << e.what();
  }
  options.channel.cut_layer = 1;
  options.channel.protection.noise = 0.5;  // noise without a clip
  EXPECT_THROW(run_audit(*model, nullptr, site, {}, options, log), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::audit
