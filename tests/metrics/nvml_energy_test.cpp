// GPU energy through NVML, against a fake libnvidia-ml (fake_nvml.cpp):
// each device's counter is read in microjoules, a missing driver or a GPU
// that counts no energy is "n/a", and the machine meter adds the GPUs to the
// RAPL packages.
#include "metrics/nvml_energy.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "metrics/powercap_meter.h"

namespace cleave::metrics {
namespace {

namespace fs = std::filesystem;

TEST(NvmlEnergyTest, ReadsEveryDevicesCounterInMicrojoules) {
  ::setenv("FAKE_NVML_DEVICES", "2", 1);
  ::unsetenv("FAKE_NVML_NO_ENERGY");
  const NvmlEnergy nvml(CLEAVE_FAKE_NVML);
  ASSERT_TRUE(nvml.available()) << nvml.status();
  EXPECT_EQ(nvml.status(), "NVML gpu-0, gpu-1");
  EXPECT_EQ(nvml.devices(), (std::vector<std::string>{"gpu-0", "gpu-1"}));
  const std::optional<std::vector<uint64_t>> first = nvml.read_uj();
  ASSERT_TRUE(first);
  // The constructor read each counter once (to see that it answers): the next reads are the second.
  EXPECT_EQ(*first, (std::vector<uint64_t>{(5000000ull + 1000) * 1000, (10000000ull + 1000) * 1000}));
}

TEST(NvmlEnergyTest, NoDriverOrAGpuWithoutACounterIsNotAvailable) {
  const NvmlEnergy missing("/nonexistent/libnvidia-ml.so.1");
  EXPECT_FALSE(missing.available());
  EXPECT_EQ(missing.status().rfind("n/a: no /nonexistent/libnvidia-ml.so.1", 0), 0u) << missing.status();
  ::setenv("FAKE_NVML_DEVICES", "2", 1);
  ::setenv("FAKE_NVML_NO_ENERGY", "1", 1);
  const NvmlEnergy partial(CLEAVE_FAKE_NVML);
  ::unsetenv("FAKE_NVML_NO_ENERGY");
  EXPECT_FALSE(partial.available()) << "a sum over some GPUs is not the machine's";
  EXPECT_EQ(partial.status(), "n/a: gpu-1 count no energy (NVML energy needs a Volta or later GPU)");
}

TEST(NvmlEnergyTest, TheMachineMeterAddsTheGpusToThePackages) {
  ::setenv("FAKE_NVML_DEVICES", "1", 1);
  ::unsetenv("FAKE_NVML_NO_ENERGY");
  const fs::path root = fs::temp_directory_path() / ("cleave_nvml_rapl_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "intel-rapl:0");
  std::ofstream(root / "intel-rapl:0" / "name") << "package-0\n";
  std::ofstream(root / "intel-rapl:0" / "max_energy_range_uj") << "262143328850\n";
  std::ofstream(root / "intel-rapl:0" / "energy_uj") << "1000000\n";
  const PowercapMeter meter(root.string(), CLEAVE_FAKE_NVML);
  ASSERT_TRUE(meter.available()) << meter.status();
  EXPECT_EQ(meter.status(), "RAPL package-0 (" + root.string() + ") + NVML gpu-0");
  ASSERT_EQ(meter.zones().size(), 2u);
  const std::optional<EnergyCounters> before = meter.read();
  std::ofstream(root / "intel-rapl:0" / "energy_uj", std::ios::trunc) << "3500000\n";   // +2.5 J
  const std::optional<EnergyCounters> after = meter.read();                             // GPU: +1 J
  ASSERT_TRUE(before && after);
  EXPECT_DOUBLE_EQ(meter.joules_between(*before, *after), 3.5);
  // Without RAPL the GPUs alone are read, and the status says so.
  const PowercapMeter gpus_only("/nonexistent/cleave/powercap", CLEAVE_FAKE_NVML);
  ASSERT_TRUE(gpus_only.available());
  EXPECT_EQ(gpus_only.status().rfind("NVML gpu-0 (GPUs only; CPU energy n/a: no /nonexistent/cleave/powercap", 0), 0u)
      << gpus_only.status();
  fs::remove_all(root);
}

}  // namespace
}  // namespace cleave::metrics
