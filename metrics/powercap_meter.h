// Energy from Linux powercap (RAPL): the package zones under
// /sys/class/powercap, intel-rapl:<N>/energy_uj, a microjoule counter that
// wraps at max_energy_range_uj. Only the top-level package-<N> zones are
// summed: their subzones (core, uncore, dram) and psys (the platform) overlap
// them or each other. Since Linux 5.10 energy_uj is readable by root only
// (CVE-2020-8694), and containers rarely see /sys/class/powercap at all: a
// missing or unreadable tree is "not available", never an error, and the
// energy figures built on it are "n/a".
//
// With an NVML library (metrics/nvml_energy.h: the NVIDIA driver's, opened
// at run time) the GPUs' energy counters are zones too ("gpu-0", ...), so a
// CUDA run's energy is the packages' and the GPUs'.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cleave::metrics {

class NvmlEnergy;

struct PowercapZone {
  std::string name;                  // "package-0", or "gpu-0" (NVML)
  std::string energy_path;           // <root>/intel-rapl:0/energy_uj; "" for a GPU
  uint64_t max_energy_range_uj = 0;  // where energy_uj wraps to 0
};

// One reading of every zone's counter, in microjoules, in zones() order.
using EnergyCounters = std::vector<uint64_t>;

// The microjoules between two readings of a counter that wraps at
// `max_range_uj`, assuming at most one wrap in between (a package at 200 W
// takes about 20 minutes to wrap a 2^38 uJ range).
uint64_t counter_delta_uj(uint64_t before, uint64_t after, uint64_t max_range_uj);

class PowercapMeter {
 public:
  static constexpr const char* kSysfsRoot = "/sys/class/powercap";

  // Finds the readable package zones under `root` (tests point it at a fake
  // tree) and, with `nvml_library` ("": none), the GPUs that count energy.
  explicit PowercapMeter(const std::string& root = kSysfsRoot, const std::string& nvml_library = "");
  ~PowercapMeter();
  PowercapMeter(PowercapMeter&&) noexcept;

  bool available() const { return !zones_.empty(); }
  const std::vector<PowercapZone>& zones() const { return zones_; }
  // "RAPL package-0, package-1 (/sys/class/powercap)", "... + NVML gpu-0",
  // or why energy is n/a.
  const std::string& status() const { return status_; }

  // Every zone's counter now; nullopt when one cannot be read (the meter is
  // then as good as absent for the interval).
  std::optional<EnergyCounters> read() const;
  // Joules, summed over the zones, between two readings of this meter.
  double joules_between(const EnergyCounters& before, const EnergyCounters& after) const;

 private:
  void find_packages(const std::string& root);

  std::vector<PowercapZone> zones_;   // the packages, then the GPUs
  std::string status_;
  std::unique_ptr<NvmlEnergy> gpus_;   // null, or available
};

// The machine's meter (/sys/class/powercap and the NVIDIA driver's NVML),
// looked for once per process.
const PowercapMeter& machine_powercap();

}  // namespace cleave::metrics
