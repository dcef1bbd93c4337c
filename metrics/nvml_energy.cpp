#include "metrics/nvml_energy.h"

#include <dlfcn.h>

namespace cleave::metrics {

// The four entry points of NVML's C API that energy needs (nvml.h: every
// call returns nvmlReturn_t, NVML_SUCCESS = 0; nvmlDevice_t is an opaque
// pointer), looked up by name in the opened library.
struct NvmlEnergy::Api {
  using Init = int (*)();
  using DeviceCount = int (*)(unsigned int*);
  using DeviceByIndex = int (*)(unsigned int, void**);
  using TotalEnergy = int (*)(void*, unsigned long long*);
  using Shutdown = int (*)();

  void* handle = nullptr;
  Init init = nullptr;
  DeviceCount device_count = nullptr;
  DeviceByIndex device_by_index = nullptr;
  TotalEnergy total_energy = nullptr;
  Shutdown shutdown = nullptr;
  bool initialised = false;

  ~Api() {
    if (initialised && shutdown) shutdown();
    if (handle) dlclose(handle);
  }
};

namespace {

template <typename Fn>
Fn symbol(void* handle, const char* name) {
  return reinterpret_cast<Fn>(dlsym(handle, name));
}

}  // namespace

NvmlEnergy::NvmlEnergy(const std::string& library) : api_(std::make_unique<Api>()) {
  api_->handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!api_->handle) {
    status_ = "n/a: no " + library + " (no NVIDIA driver on this machine)";
    return;
  }
  api_->init = symbol<Api::Init>(api_->handle, "nvmlInit_v2");
  api_->device_count = symbol<Api::DeviceCount>(api_->handle, "nvmlDeviceGetCount_v2");
  api_->device_by_index = symbol<Api::DeviceByIndex>(api_->handle, "nvmlDeviceGetHandleByIndex_v2");
  api_->total_energy = symbol<Api::TotalEnergy>(api_->handle, "nvmlDeviceGetTotalEnergyConsumption");
  api_->shutdown = symbol<Api::Shutdown>(api_->handle, "nvmlShutdown");
  if (!api_->init || !api_->device_count || !api_->device_by_index || !api_->total_energy || !api_->shutdown) {
    status_ = "n/a: " + library + " lacks the NVML energy calls (a driver older than Volta support)";
    return;
  }
  if (api_->init() != 0) {
    status_ = "n/a: nvmlInit failed (" + library + " found, but the driver did not start)";
    return;
  }
  api_->initialised = true;
  unsigned int count = 0;
  if (api_->device_count(&count) != 0 || count == 0) {
    status_ = "n/a: NVML sees no GPU";
    return;
  }
  std::string without;
  for (unsigned int i = 0; i < count; ++i) {
    void* device = nullptr;
    unsigned long long millijoules = 0;
    const std::string name = "gpu-" + std::to_string(i);
    if (api_->device_by_index(i, &device) != 0 || api_->total_energy(device, &millijoules) != 0) {
      without += (without.empty() ? "" : ", ") + name;
      continue;
    }
    devices_.push_back(device);
    names_.push_back(name);
  }
  if (!without.empty()) {
    // One GPU without a counter would make the sum a part of the machine's GPUs.
    devices_.clear();
    names_.clear();
    status_ = "n/a: " + without + " count no energy (NVML energy needs a Volta or later GPU)";
    return;
  }
  status_ = "NVML";
  for (size_t i = 0; i < names_.size(); ++i) status_ += (i ? ", " : " ") + names_[i];
}

NvmlEnergy::~NvmlEnergy() = default;

std::optional<std::vector<uint64_t>> NvmlEnergy::read_uj() const {
  std::vector<uint64_t> counters;
  counters.reserve(devices_.size());
  for (void* device : devices_) {
    unsigned long long millijoules = 0;
    if (api_->total_energy(device, &millijoules) != 0) return std::nullopt;
    counters.push_back(static_cast<uint64_t>(millijoules) * 1000);
  }
  return counters;
}

}  // namespace cleave::metrics
