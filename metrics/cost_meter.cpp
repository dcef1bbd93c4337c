#include "metrics/cost_meter.h"

#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "metrics/cpu_clock.h"

namespace cleave::metrics {
namespace {

// The compute segments open in the process right now, and how many ever
// began: a segment that saw either move overlapped another thread's.
std::atomic<int64_t> g_open_compute{0};
std::atomic<uint64_t> g_compute_starts{0};

struct Frame {
  CostMeter* meter;
  Phase phase;
};

// What this thread is doing: its open scopes (innermost last) and when the
// innermost one's current segment began.
struct ThreadState {
  std::vector<Frame> stack;
  CpuSample start;
  bool compute = false;
  bool shared = false;
  uint64_t start_count = 0;
  std::optional<EnergyCounters> energy;
};
thread_local ThreadState t_state;

void begin_segment(ThreadState& state) {
  const Frame& frame = state.stack.back();
  state.compute = charges_process_cpu(frame.phase);
  state.energy.reset();
  if (state.compute) {
    state.shared = g_open_compute.fetch_add(1) > 0;
    state.start_count = ++g_compute_starts;
    if (const PowercapMeter* energy = frame.meter->energy()) state.energy = energy->read();
  }
  state.start = CpuSample::now();
}

}  // namespace

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::forward: return "forward";
    case Phase::backward: return "backward";
    case Phase::optimizer: return "optimizer";
    case Phase::codec: return "codec";
    case Phase::wire: return "wire";
    case Phase::aggregation: return "aggregation";
    case Phase::other: return "other";
  }
  return "?";
}

bool charges_process_cpu(Phase phase) { return phase != Phase::wire && phase != Phase::other; }

double RoleCost::cpu_seconds() const {
  double sum = 0;
  for (const PhaseCost& phase : phases) sum += phase.cpu_seconds;
  return sum;
}

double RoleCost::wall_seconds() const {
  double sum = 0;
  for (const PhaseCost& phase : phases) sum += phase.wall_seconds;
  return sum;
}

std::optional<double> RoleCost::joules() const {
  if (unmetered_segments > 0 || metered_segments == 0) return std::nullopt;
  double sum = 0;
  for (const PhaseCost& phase : phases) sum += phase.joules;
  return sum;
}

std::optional<double> RoleCost::cpu_seconds_per_token() const {
  if (tokens <= 0) return std::nullopt;
  return cpu_seconds() / static_cast<double>(tokens);
}

std::optional<double> RoleCost::joules_per_token() const {
  const std::optional<double> energy = joules();
  if (!energy || tokens <= 0) return std::nullopt;
  return *energy / static_cast<double>(tokens);
}

RoleCost& RoleCost::operator+=(const RoleCost& o) {
  for (size_t i = 0; i < kPhaseCount; ++i) {
    phases[i].wall_seconds += o.phases[i].wall_seconds;
    phases[i].cpu_seconds += o.phases[i].cpu_seconds;
    phases[i].joules += o.phases[i].joules;
  }
  tokens += o.tokens;
  metered_segments += o.metered_segments;
  unmetered_segments += o.unmetered_segments;
  shared_segments += o.shared_segments;
  return *this;
}

RoleCost RoleCost::operator-(const RoleCost& e) const {
  RoleCost d = *this;
  for (size_t i = 0; i < kPhaseCount; ++i) {
    d.phases[i].wall_seconds -= e.phases[i].wall_seconds;
    d.phases[i].cpu_seconds -= e.phases[i].cpu_seconds;
    d.phases[i].joules -= e.phases[i].joules;
  }
  d.tokens -= e.tokens;
  d.metered_segments -= e.metered_segments;
  d.unmetered_segments -= e.unmetered_segments;
  d.shared_segments -= e.shared_segments;
  return d;
}

std::string describe_cost(const RoleCost& cost) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "CPU %.3f s (", cost.cpu_seconds());
  std::string text = buf;
  if (const std::optional<double> per_token = cost.cpu_seconds_per_token()) {
    std::snprintf(buf, sizeof buf, "%.2f us/token over %lld tokens; ", *per_token * 1e6,
                  static_cast<long long>(cost.tokens));
    text += buf;
  }
  bool first = true;
  for (size_t i = 0; i < kPhaseCount; ++i) {
    if (cost.phases[i].cpu_seconds <= 0) continue;
    std::snprintf(buf, sizeof buf, "%s%s %.3f", first ? "" : ", ", phase_name(static_cast<Phase>(i)),
                  cost.phases[i].cpu_seconds);
    text += buf;
    first = false;
  }
  std::snprintf(buf, sizeof buf, "), wall %.3f s, energy ", cost.wall_seconds());
  text += buf;
  if (const std::optional<double> joules = cost.joules()) {
    std::snprintf(buf, sizeof buf, "%.3f J", *joules);
    text += buf;
    if (const std::optional<double> per_token = cost.joules_per_token()) {
      std::snprintf(buf, sizeof buf, " (%.3f mJ/token)", *per_token * 1e3);
      text += buf;
    }
  } else {
    text += "n/a";
  }
  if (cost.shared_segments > 0) {
    text += "; " + std::to_string(cost.shared_segments) + " phases overlapped other threads' (own thread's CPU only)";
  }
  return text;
}

CostMeter::CostMeter(const PowercapMeter* energy)
    : energy_(energy && energy->available() ? energy : nullptr) {}

RoleCost CostMeter::totals() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return totals_;
}

void CostMeter::add_tokens(int64_t tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  totals_.tokens += tokens;
}

void CostMeter::charge(Phase phase, double wall, double cpu, std::optional<double> joules, bool compute,
                       bool shared) {
  std::lock_guard<std::mutex> lock(mutex_);
  PhaseCost& cost = totals_[phase];
  cost.wall_seconds += wall;
  cost.cpu_seconds += cpu;
  if (!compute) return;
  if (joules) {
    cost.joules += *joules;
    ++totals_.metered_segments;
  } else {
    ++totals_.unmetered_segments;
  }
  if (shared) ++totals_.shared_segments;
}

void PhaseScope::end_segment() {
  ThreadState& state = t_state;
  const CpuSample now = CpuSample::now();
  const Frame& frame = state.stack.back();
  bool shared = false;
  std::optional<double> joules;
  if (state.compute) {
    shared = state.shared || g_compute_starts.load() != state.start_count;
    g_open_compute.fetch_sub(1);
    const PowercapMeter* energy = frame.meter->energy();
    if (energy && state.energy && !shared) {
      if (const std::optional<EnergyCounters> after = energy->read()) {
        joules = energy->joules_between(*state.energy, *after);
      }
    }
  }
  const double cpu = state.compute && !shared ? now.process_cpu - state.start.process_cpu
                                              : now.thread_cpu - state.start.thread_cpu;
  frame.meter->charge(frame.phase, now.wall - state.start.wall, cpu, joules, state.compute, shared);
}

PhaseScope::PhaseScope(CostMeter& meter, Phase phase) { open(&meter, phase); }

PhaseScope::PhaseScope(Phase phase) {
  if (!t_state.stack.empty()) open(t_state.stack.back().meter, phase);
}

void PhaseScope::open(CostMeter* meter, Phase phase) {
  ThreadState& state = t_state;
  if (!state.stack.empty()) end_segment();
  depth_ = state.stack.size();
  state.stack.push_back({meter, phase});
  begin_segment(state);
  active_ = true;
}

PhaseScope::~PhaseScope() {
  if (!active_) return;
  ThreadState& state = t_state;
  try {
    end_segment();
    state.stack.pop_back();
    if (!state.stack.empty()) begin_segment(state);
  } catch (...) {
    // Only a CPU clock that stopped working throws: the segment is lost,
    // unwinding goes on.
    if (state.stack.size() > depth_) state.stack.resize(depth_);
  }
}

void PhaseScope::switch_to(Phase phase) {
  if (!active_) return;
  ThreadState& state = t_state;
  if (depth_ + 1 != state.stack.size()) {
    throw std::logic_error(std::string("PhaseScope::switch_to(") + phase_name(phase) +
                           ") while an inner scope is open: close it first");
  }
  end_segment();
  state.stack.back().phase = phase;
  begin_segment(state);
}

}  // namespace cleave::metrics
