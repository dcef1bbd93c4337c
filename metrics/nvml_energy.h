// GPU energy from NVML: nvmlDeviceGetTotalEnergyConsumption, each device's
// millijoules since the driver loaded (Volta and later GPUs). The library
// (libnvidia-ml.so.1, which the NVIDIA driver installs) is opened at run time
// with dlopen, so cleave neither links nor needs it: on a machine without
// the driver, or whose GPUs do not count energy, GPU energy is "not
// available", never an error. Read alongside RAPL by the machine's energy
// meter (metrics/powercap_meter.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cleave::metrics {

class NvmlEnergy {
 public:
  static constexpr const char* kLibrary = "libnvidia-ml.so.1";

  // Opens `library` (tests give a fake one) and finds the devices whose
  // energy counter answers.
  explicit NvmlEnergy(const std::string& library = kLibrary);
  ~NvmlEnergy();
  NvmlEnergy(const NvmlEnergy&) = delete;
  NvmlEnergy& operator=(const NvmlEnergy&) = delete;

  bool available() const { return !devices_.empty(); }
  // "gpu-0", "gpu-1", ...: the devices read, in order.
  const std::vector<std::string>& devices() const { return names_; }
  // "NVML gpu-0, gpu-1", or why GPU energy is n/a.
  const std::string& status() const { return status_; }
  // Every device's counter now, in microjoules; nullopt when one fails.
  std::optional<std::vector<uint64_t>> read_uj() const;

 private:
  struct Api;
  std::unique_ptr<Api> api_;
  std::vector<void*> devices_;   // nvmlDevice_t handles
  std::vector<std::string> names_;
  std::string status_;
};

}  // namespace cleave::metrics
