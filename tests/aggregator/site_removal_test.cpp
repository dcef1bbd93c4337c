// Taking a site out of the federation while it runs (a revoked certificate,
// or the operator's removed_sites file): it leaves the open round at once,
// so the round closes as soon as the other sampled sites have reported
// instead of at its deadline, it is sampled no more, and its registrations,
// polls and updates are refused with the reason. Driven through handle() on
// a manual clock that never reaches a deadline.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

#include "aggregator/aggregator_checkpoint.h"
#include "aggregator/removed_sites.h"
#include "tests/aggregator/federation_fixture.h"
#include "tests/support/shared_data.h"

namespace cleave::aggregator {
namespace {

using test::ScriptedSite;
using Harness = test::ServiceHarness;

AggregatorOptions sites_per_round(int64_t rounds, int64_t per_round) {
  AggregatorOptions options;
  options.rounds = rounds;
  options.clients_per_round = per_round;
  options.min_clients = 1;
  options.round_deadline_ms = 3600000;   // never reached: the clock does not move
  options.poll_interval_ms = 5;
  options.seed = 17;
  return options;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

bool logged(const Harness& h, const std::string& text) {
  for (const std::string& line : h.log) {
    if (line.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(SiteRemoval, ARemovedSiteLeavesTheOpenRoundWhichClosesWhenTheOthersHaveReported) {
  Harness h(sites_per_round(2, 3));
  ScriptedSite a(h.service, "a"), b(h.service, "b"), revoked(h.service, "c");
  for (ScriptedSite* site : {&a, &b, &revoked}) site->register_site();
  const NamedTensors global = h.service.global().tensors;
  for (ScriptedSite* site : {&a, &b, &revoked}) site->take_assignment(global, 0);
  ASSERT_EQ(h.service.sampled_clients(), (std::vector<std::string>{"a", "b", "c"}));
  const NamedTensors delta_a = test::seeded_delta(global, 1), delta_b = test::seeded_delta(global, 2);
  EXPECT_TRUE(a.send_update(0, delta_a, 5).as<UpdateAck>(FederationMessage::update_ack).accepted);
  EXPECT_TRUE(b.send_update(0, delta_b, 15).as<UpdateAck>(FederationMessage::update_ack).accepted);
  h.service.tick();
  ASSERT_EQ(h.service.open_round(), std::optional<uint32_t>(0)) << "round 0 still waits for c";

  h.service.remove_site("c", "its certificate was revoked");
  ASSERT_EQ(h.service.completed_rounds(), 1u) << "the round should close at once, not at its deadline";
  const RoundSummary closed = h.service.history().at(0);
  EXPECT_EQ(closed.reported, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(logged(h, "site c taken out of the federation: its certificate was revoked"));
  EXPECT_EQ(h.service.registered_clients(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(h.service.sampled_clients(), (std::vector<std::string>{"a", "b"})) << "round 1 does not sample c";

  // Whatever c still sends is refused with the reason.
  const std::string refusal = "site c may not take part in this federation: its certificate was revoked";
  EXPECT_EQ(revoked.poll().error_text(), refusal);
  EXPECT_EQ(revoked.register_site().error_text(), refusal);
  const auto ack = revoked.send_update(1, test::seeded_delta(global, 3), 5).as<UpdateAck>(FederationMessage::update_ack);
  EXPECT_FALSE(ack.accepted);
  EXPECT_EQ(ack.reason, refusal);
}

// A site removed after it reported: its update goes with it, the round
// aggregates the others' (here FedAvg of a alone is a's delta).
TEST(SiteRemoval, TheUpdateOfASiteRemovedAfterReportingIsDropped) {
  Harness h(sites_per_round(1, 3));
  ScriptedSite a(h.service, "a"), b(h.service, "b"), c(h.service, "c");
  for (ScriptedSite* site : {&a, &b, &c}) site->register_site();
  const NamedTensors global = h.service.global().tensors;
  for (ScriptedSite* site : {&a, &b, &c}) site->take_assignment(global, 0);
  const NamedTensors delta_a = test::seeded_delta(global, 1);
  EXPECT_TRUE(a.send_update(0, delta_a, 5).as<UpdateAck>(FederationMessage::update_ack).accepted);
  EXPECT_TRUE(b.send_update(0, test::seeded_delta(global, 2), 15).as<UpdateAck>(FederationMessage::update_ack).accepted);
  h.service.remove_site("b", "removed in a test");
  EXPECT_EQ(h.service.open_round(), std::optional<uint32_t>(0)) << "c is still expected";
  h.service.remove_site("c", "removed in a test");
  ASSERT_EQ(h.service.state(), RunState::finished);
  EXPECT_EQ(h.service.history().at(0).reported, (std::vector<std::string>{"a"}));
  NamedTensors expected;
  for (const auto& [name, tensor] : global) expected[name] = tensor + delta_a.at(name);
  test::expect_tensors_near(h.service.global().tensors, expected, 1e-6);
}

TEST(SiteRemoval, TheOperatorsFileRemovesASiteAndDeletingItsLineLetsItBack) {
  AggregatorOptions options = sites_per_round(3, 2);
  options.checkpoint_dir = test::scratch_dir("site_removal_file");
  const std::string file = options.checkpoint_dir + "/removed_sites";
  Harness h(options);
  h.service.watch_removed_sites(file);   // absent: nobody removed
  ScriptedSite a(h.service, "a"), b(h.service, "b");
  for (ScriptedSite* site : {&a, &b}) site->register_site();
  const NamedTensors global = h.service.global().tensors;
  a.take_assignment(global, 0);
  b.take_assignment(global, 0);
  EXPECT_TRUE(a.send_update(0, test::seeded_delta(global, 1), 5).as<UpdateAck>(FederationMessage::update_ack).accepted);

  write_text(file, "# sites kept out\n\n  b   # asked to leave\nsite with spaces\n");
  h.service.tick();
  ASSERT_EQ(h.service.completed_rounds(), 1u) << "b left round 0, which closes with a's update";
  EXPECT_EQ(h.service.removed_sites(), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(logged(h, file + " line 4: 'site with spaces' is not a site name"));
  const std::string refusal = b.register_site().error_text();
  EXPECT_NE(refusal.find("site b may not take part in this federation: removed by the operator (listed in " + file),
            std::string::npos)
      << refusal;
  EXPECT_EQ(h.service.sampled_clients(), (std::vector<std::string>{"a"}));

  write_text(file, "# nobody\n");
  h.service.tick();
  EXPECT_TRUE(h.service.removed_sites().empty());
  EXPECT_TRUE(logged(h, "site b is no longer listed in " + file + ": it may register again"));
  b.register_site().as<RegisterReply>(FederationMessage::register_reply);
  EXPECT_EQ(h.service.registered_clients(), (std::vector<std::string>{"a", "b"}));
}

// The file is the removal's persistence: a restarted aggregator whose
// checkpoint still lists the site as registered keeps it out from the start.
TEST(SiteRemoval, ARestartedAggregatorKeepsTheListedSitesOut) {
  AggregatorOptions options = sites_per_round(3, 2);
  options.checkpoint_dir = test::scratch_dir("site_removal_restart");
  {
    Harness h(options);
    ScriptedSite a(h.service, "a"), b(h.service, "b");
    for (ScriptedSite* site : {&a, &b}) site->register_site();
    const NamedTensors global = h.service.global().tensors;
    for (ScriptedSite* site : {&a, &b}) {
      site->take_assignment(global, 0);
      EXPECT_TRUE(site->send_update(0, test::seeded_delta(global, 1), 5)
                      .as<UpdateAck>(FederationMessage::update_ack)
                      .accepted);
    }
    ASSERT_EQ(h.service.completed_rounds(), 1u);
  }
  ASSERT_EQ(load_checkpoint(options.checkpoint_dir)->registered.size(), 2u);
  write_text(options.checkpoint_dir + "/removed_sites", "b\n");
  Harness h(options);
  h.service.watch_removed_sites(options.checkpoint_dir + "/removed_sites");
  EXPECT_EQ(h.service.registered_clients(), (std::vector<std::string>{"a"}));
  h.service.tick();
  EXPECT_EQ(h.service.sampled_clients(), (std::vector<std::string>{"a"}));
}

TEST(RemovedSitesFile, ReadsNamesSkipsCommentsAndWaitsForAnUnfinishedLine) {
  const RemovedSitesList list = parse_removed_sites("site-a\n# note\n\tsite-b # why\n\nsite-c", "removed_sites");
  EXPECT_EQ(list.sites, (std::set<std::string>{"site-a", "site-b"}));
  ASSERT_EQ(list.problems.size(), 1u);
  EXPECT_NE(list.problems[0].find("line 5: 'site-c' has no newline yet"), std::string::npos) << list.problems[0];
}

TEST(RemovedSitesFile, ReportsAChangeOnlyWhenTheFileChanged) {
  const std::string path = test::scratch_dir("removed_sites_file") + "/removed_sites";
  RemovedSitesFile file(path);
  const auto missing = file.read_if_changed();
  ASSERT_TRUE(missing) << "the first call reads, a missing file being empty";
  EXPECT_TRUE(missing->sites.empty());
  EXPECT_FALSE(file.read_if_changed());
  write_text(path, "site-a\n");
  const auto created = file.read_if_changed();
  ASSERT_TRUE(created);
  EXPECT_EQ(created->sites, (std::set<std::string>{"site-a"}));
  EXPECT_FALSE(file.read_if_changed());
  write_text(path, "site-a\nsite-b\n");
  const auto grown = file.read_if_changed();
  ASSERT_TRUE(grown);
  EXPECT_EQ(grown->sites.size(), 2u);
  std::remove(path.c_str());
  const auto removed = file.read_if_changed();
  ASSERT_TRUE(removed);
  EXPECT_TRUE(removed->sites.empty());
}

}  // namespace
}  // namespace cleave::aggregator
