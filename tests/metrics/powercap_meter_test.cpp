// The powercap (RAPL) meter on fake sysfs trees: package zones are found and
// summed (subzones and psys are not), the counter's wrap-around is undone,
// and a missing, unreadable or package-less tree is "n/a", not an error.
#include "metrics/powercap_meter.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace cleave::metrics {
namespace {

namespace fs = std::filesystem;

class FakePowercap {
 public:
  explicit FakePowercap(const std::string& name)
      : root_(fs::temp_directory_path() / ("cleave_powercap_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~FakePowercap() { fs::remove_all(root_); }

  // intel-rapl:<id>/{name, energy_uj, max_energy_range_uj}
  void zone(const std::string& id, const std::string& name, uint64_t energy_uj, uint64_t max_range_uj) {
    const fs::path dir = root_ / ("intel-rapl:" + id);
    fs::create_directories(dir);
    write(dir / "name", name);
    write(dir / "max_energy_range_uj", std::to_string(max_range_uj));
    set_energy(id, energy_uj);
  }
  void set_energy(const std::string& id, uint64_t energy_uj) {
    write(root_ / ("intel-rapl:" + id) / "energy_uj", std::to_string(energy_uj));
  }
  void write(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::trunc) << text << "\n"; }
  std::string root() const { return root_.string(); }

 private:
  fs::path root_;
};

TEST(PowercapMeterTest, SumsThePackageZonesOfAFakeTree) {
  FakePowercap tree("packages");
  tree.zone("0", "package-0", 1000000, 262143328850);
  tree.zone("0:0", "core", 500000, 262143328850);          // inside package-0: not added again
  tree.zone("1", "package-1", 3000000, 262143328850);
  tree.zone("2", "psys", 9000000, 262143328850);           // the platform, overlapping the packages
  const PowercapMeter meter(tree.root());
  ASSERT_TRUE(meter.available()) << meter.status();
  ASSERT_EQ(meter.zones().size(), 2u);
  EXPECT_EQ(meter.zones()[0].name, "package-0");
  EXPECT_EQ(meter.zones()[1].name, "package-1");
  EXPECT_EQ(meter.zones()[0].max_energy_range_uj, 262143328850u);
  EXPECT_EQ(meter.status(), "RAPL package-0, package-1 (" + tree.root() + ")");

  const std::optional<EnergyCounters> before = meter.read();
  ASSERT_TRUE(before);
  EXPECT_EQ(*before, (EnergyCounters{1000000, 3000000}));
  tree.set_energy("0", 3500000);    // +2.5 J
  tree.set_energy("1", 3250000);    // +0.25 J
  tree.set_energy("0:0", 9999999);  // ignored
  const std::optional<EnergyCounters> after = meter.read();
  ASSERT_TRUE(after);
  EXPECT_DOUBLE_EQ(meter.joules_between(*before, *after), 2.75);
}

TEST(PowercapMeterTest, UndoesTheCounterWrapAround) {
  EXPECT_EQ(counter_delta_uj(100, 250, 1000), 150u);
  EXPECT_EQ(counter_delta_uj(900, 50, 1000), 150u);   // 900 -> 1000, then 0 -> 50
  EXPECT_EQ(counter_delta_uj(7, 7, 1000), 0u);

  FakePowercap tree("wrap");
  tree.zone("0", "package-0", 999000, 1000000);
  const PowercapMeter meter(tree.root());
  ASSERT_TRUE(meter.available()) << meter.status();
  const EnergyCounters before = *meter.read();
  tree.set_energy("0", 500);   // wrapped at 1 J
  EXPECT_DOUBLE_EQ(meter.joules_between(before, *meter.read()), 1500e-6);
}

TEST(PowercapMeterTest, AMissingTreeIsNotAvailable) {
  const PowercapMeter meter("/nonexistent/cleave/powercap");
  EXPECT_FALSE(meter.available());
  EXPECT_EQ(meter.status().rfind("n/a: no /nonexistent/cleave/powercap", 0), 0u) << meter.status();
  ASSERT_TRUE(meter.read());
  EXPECT_TRUE(meter.read()->empty());
}

TEST(PowercapMeterTest, AnUnreadableCounterMakesTheMeterNotAvailable) {
  FakePowercap tree("unreadable");
  tree.zone("0", "package-0", 1000, 1000000);
  tree.zone("1", "package-1", 1000, 1000000);
  tree.write(tree.root() + "/intel-rapl:1/energy_uj", "");   // what a root-only file reads as here: nothing
  const PowercapMeter meter(tree.root());
  EXPECT_FALSE(meter.available());   // half the packages would be a wrong total
  EXPECT_NE(meter.status().find("cannot read " + tree.root() + "/intel-rapl:1/energy_uj"), std::string::npos)
      << meter.status();
}

TEST(PowercapMeterTest, ATreeWithoutPackagesIsNotAvailable) {
  FakePowercap tree("psys_only");
  tree.zone("0", "psys", 1000, 1000000);
  const PowercapMeter meter(tree.root());
  EXPECT_FALSE(meter.available());
  EXPECT_EQ(meter.status().rfind("n/a: no package zone", 0), 0u) << meter.status();
}

TEST(PowercapMeterTest, ACounterThatStopsBeingReadableGivesNoReading) {
  FakePowercap tree("vanishing");
  tree.zone("0", "package-0", 1000, 1000000);
  const PowercapMeter meter(tree.root());
  ASSERT_TRUE(meter.available());
  fs::remove(tree.root() + "/intel-rapl:0/energy_uj");
  EXPECT_FALSE(meter.read());
}

}  // namespace
}  // namespace cleave::metrics
