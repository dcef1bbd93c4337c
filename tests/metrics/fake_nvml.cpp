// A stand-in for the NVIDIA driver's libnvidia-ml.so.1 with the calls the
// energy meter makes (metrics/nvml_energy.cpp): FAKE_NVML_DEVICES devices
// (default 2) whose energy counters start at 5,000,000 mJ x (device + 1) and
// grow by 1,000 mJ at every read; FAKE_NVML_NO_ENERGY=K makes device K
// answer NVML_ERROR_NOT_SUPPORTED (3) as pre-Volta GPUs do.
#include <cstdlib>

namespace {

unsigned int g_devices = 0;
int g_no_energy = -1;
unsigned long long g_reads[8] = {};
int g_devices_storage[8] = {};

}  // namespace

extern "C" {

int nvmlInit_v2() {
  const char* devices = std::getenv("FAKE_NVML_DEVICES");
  g_devices = devices ? static_cast<unsigned int>(std::atoi(devices)) : 2u;
  if (g_devices > 8) g_devices = 8;
  const char* no_energy = std::getenv("FAKE_NVML_NO_ENERGY");
  g_no_energy = no_energy ? std::atoi(no_energy) : -1;
  for (unsigned long long& reads : g_reads) reads = 0;
  return 0;
}

int nvmlDeviceGetCount_v2(unsigned int* count) {
  *count = g_devices;
  return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (index >= g_devices) return 2;   // NVML_ERROR_INVALID_ARGUMENT
  g_devices_storage[index] = static_cast<int>(index);
  *device = &g_devices_storage[index];
  return 0;
}

int nvmlDeviceGetTotalEnergyConsumption(void* device, unsigned long long* millijoules) {
  const int index = *static_cast<int*>(device);
  if (index == g_no_energy) return 3;   // NVML_ERROR_NOT_SUPPORTED
  *millijoules = 5000000ull * static_cast<unsigned long long>(index + 1) + 1000ull * g_reads[index]++;
  return 0;
}

int nvmlShutdown() { return 0; }

}  // extern "C"
