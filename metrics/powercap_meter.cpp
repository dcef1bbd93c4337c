#include "metrics/powercap_meter.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <limits>
#include <stdexcept>

#include "metrics/nvml_energy.h"

namespace cleave::metrics {
namespace {

namespace fs = std::filesystem;

// The first line of a sysfs file, or nullopt when it cannot be read.
std::optional<std::string> read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

std::optional<uint64_t> read_counter(const std::string& path) {
  const std::optional<std::string> line = read_line(path);
  if (!line || line->empty() || line->find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  try {
    return static_cast<uint64_t>(std::stoull(*line));
  } catch (const std::out_of_range&) {
    return std::nullopt;
  }
}

}  // namespace

uint64_t counter_delta_uj(uint64_t before, uint64_t after, uint64_t max_range_uj) {
  if (after >= before) return after - before;
  // Wrapped: from `before` up to the range, then from 0 to `after`. A range
  // below `before` is nonsense from the kernel: count what is certain.
  return max_range_uj >= before ? max_range_uj - before + after : after;
}

PowercapMeter::~PowercapMeter() = default;
PowercapMeter::PowercapMeter(PowercapMeter&&) noexcept = default;

PowercapMeter::PowercapMeter(const std::string& root, const std::string& nvml_library) {
  find_packages(root);
  if (nvml_library.empty()) return;
  auto gpus = std::make_unique<NvmlEnergy>(nvml_library);
  if (!gpus->available()) {
    // A driver that is there but counts nothing is worth saying; no driver is the usual CPU machine.
    if (!zones_.empty() && gpus->status().rfind("n/a: no ", 0) != 0) status_ += "; GPU energy " + gpus->status();
    return;
  }
  // Counters in millijoules since the driver loaded: no wrap in a run.
  for (const std::string& name : gpus->devices()) {
    zones_.push_back(PowercapZone{name, "", std::numeric_limits<uint64_t>::max()});
  }
  status_ = zones_.size() == gpus->devices().size() ? gpus->status() + " (GPUs only; CPU energy " + status_ + ")"
                                                   : status_ + " + " + gpus->status();
  gpus_ = std::move(gpus);
}

void PowercapMeter::find_packages(const std::string& root) {
  std::error_code error;
  if (!fs::is_directory(root, error)) {
    status_ = "n/a: no " + root + " (no powercap/RAPL on this machine, or not visible in this container)";
    return;
  }
  // Top-level zones only: intel-rapl:0, not intel-rapl:0:0.
  static const std::regex kZone(R"(intel-rapl:[0-9]+)");
  std::vector<fs::path> candidates;
  for (const fs::directory_entry& entry : fs::directory_iterator(root, error)) {
    if (std::regex_match(entry.path().filename().string(), kZone)) candidates.push_back(entry.path());
  }
  std::sort(candidates.begin(), candidates.end());
  std::string unreadable;
  for (const fs::path& dir : candidates) {
    const std::optional<std::string> name = read_line((dir / "name").string());
    if (!name || name->rfind("package-", 0) != 0) continue;   // psys overlaps the packages
    PowercapZone zone;
    zone.name = *name;
    zone.energy_path = (dir / "energy_uj").string();
    const std::optional<uint64_t> range = read_counter((dir / "max_energy_range_uj").string());
    if (!range || !read_counter(zone.energy_path)) {
      unreadable += (unreadable.empty() ? "" : ", ") + zone.energy_path;
      continue;
    }
    zone.max_energy_range_uj = *range;
    zones_.push_back(std::move(zone));
  }
  if (!unreadable.empty()) {
    // One unreadable package would make the sum a part of the machine's.
    zones_.clear();
    status_ = "n/a: cannot read " + unreadable + " (root only since Linux 5.10; run as root or grant read access)";
  } else if (zones_.empty()) {
    status_ = "n/a: no package zone (intel-rapl:<N> named package-<N>) under " + root;
  } else {
    status_ = "RAPL";
    for (size_t i = 0; i < zones_.size(); ++i) status_ += (i ? ", " : " ") + zones_[i].name;
    status_ += " (" + root + ")";
  }
}

std::optional<EnergyCounters> PowercapMeter::read() const {
  EnergyCounters counters;
  counters.reserve(zones_.size());
  for (const PowercapZone& zone : zones_) {
    if (zone.energy_path.empty()) continue;   // the GPUs, read below
    const std::optional<uint64_t> value = read_counter(zone.energy_path);
    if (!value) return std::nullopt;
    counters.push_back(*value);
  }
  if (gpus_) {
    const std::optional<std::vector<uint64_t>> gpus = gpus_->read_uj();
    if (!gpus) return std::nullopt;
    counters.insert(counters.end(), gpus->begin(), gpus->end());
  }
  return counters;
}

double PowercapMeter::joules_between(const EnergyCounters& before, const EnergyCounters& after) const {
  if (before.size() != zones_.size() || after.size() != zones_.size()) {
    throw std::invalid_argument("joules_between: readings of " + std::to_string(before.size()) + " and " +
                                std::to_string(after.size()) + " counters for a meter of " +
                                std::to_string(zones_.size()) + " zones");
  }
  uint64_t microjoules = 0;
  for (size_t i = 0; i < zones_.size(); ++i) {
    microjoules += counter_delta_uj(before[i], after[i], zones_[i].max_energy_range_uj);
  }
  return static_cast<double>(microjoules) * 1e-6;
}

const PowercapMeter& machine_powercap() {
  static const PowercapMeter meter(PowercapMeter::kSysfsRoot, NvmlEnergy::kLibrary);
  return meter;
}

}  // namespace cleave::metrics
