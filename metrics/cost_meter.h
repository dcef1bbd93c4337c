// What a role (site, split server, aggregator) costs its machine: wall time,
// CPU seconds and, where the machine has a powercap meter, joules, per phase
// of its work, and the training tokens it served, so that the cost per token
// of each role can be reported (round logs, the simulator's metrics files).
//
// A role owns a CostMeter; its code marks phases with PhaseScope, a RAII
// guard. Scopes nest on a thread and are exclusive: while an inner scope is
// open the outer one's clock is paused, so every moment of a thread is
// charged to one phase. An inner scope may name no meter (PhaseScope(phase)):
// it charges the meter of the innermost scope open on its thread, so shared
// code (the tensor codecs) is charged to whichever role called it, and does
// nothing on a thread without a role.
//
// Whose CPU is it? LibTorch's intra-op threads compute on behalf of the
// thread that called the operator, and the calling thread's own CPU clock
// misses them. So the compute phases (forward, backward, optimizer, codec,
// aggregation) are charged the PROCESS's CPU time over the phase: right when
// the role is the only one computing in its process, as in a deployment (one
// role per process) and in `cleave simulate` with federation.workers: 1
// (the roles take turns: a site waits while the split server computes).
// When two compute phases overlap in time (other threads computing: workers
// > 1, or concurrent sites under secure aggregation) each is charged only
// its own thread's CPU, which misses its intra-op work, and is counted in
// RoleCost::shared_segments (and gets no energy). The waiting and
// bookkeeping phases (wire, other) are always charged their own thread's
// CPU, because while a role waits for a peer the peer computes: charging
// the process would count the peer's work twice. Code that waits on a peer
// inside a compute phase opens a wire scope around the wait.
//
// Energy is the machine's package energy (metrics/powercap_meter.h) over the
// role's compute phases: what its machine drew while it worked, idle draw
// and other processes included. Without a meter it is n/a (nullopt), never 0.
// On CUDA the CPU and wall figures count the host side only (kernels run
// asynchronously; a phase ends when the host moves on).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "metrics/powercap_meter.h"

namespace cleave::metrics {

enum class Phase : uint8_t {
  forward,      // blocks and loss, forward
  backward,     // autograd backward
  optimizer,    // gradient clipping and the optimizer step
  codec,        // encoding and decoding tensors for the wire
  wire,         // waiting on and talking to peers: requests, replies, TLS, polling
  aggregation,  // averaging adapters: the strategy, SFL-V1 averaging, checkpoints
  other,        // the rest of the role's work (setup, batching, bookkeeping)
};
constexpr size_t kPhaseCount = 7;
const char* phase_name(Phase phase);
// The compute phases, charged the process's CPU time (see above).
bool charges_process_cpu(Phase phase);

struct PhaseCost {
  double wall_seconds = 0;
  double cpu_seconds = 0;
  double joules = 0;   // of the metered segments only: see RoleCost::joules()
};

struct RoleCost {
  std::array<PhaseCost, kPhaseCount> phases{};
  int64_t tokens = 0;               // training tokens the role served (CostMeter::add_tokens)
  int64_t metered_segments = 0;     // compute segments whose energy was read
  int64_t unmetered_segments = 0;   // compute segments without (no meter, a failed read, shared)
  int64_t shared_segments = 0;      // compute segments that overlapped another thread's compute

  const PhaseCost& operator[](Phase phase) const { return phases[static_cast<size_t>(phase)]; }
  PhaseCost& operator[](Phase phase) { return phases[static_cast<size_t>(phase)]; }
  double cpu_seconds() const;
  double wall_seconds() const;
  // Joules over the compute phases; nullopt (n/a) unless every compute segment was metered.
  std::optional<double> joules() const;
  std::optional<double> cpu_seconds_per_token() const;   // nullopt without tokens
  std::optional<double> joules_per_token() const;

  RoleCost& operator+=(const RoleCost& other);
  RoleCost operator-(const RoleCost& earlier) const;   // of a later snapshot of the same meter
};

// "CPU 1.234 s (30.1 us/token over 40960 tokens; forward 0.400, backward 0.700, ...), wall 2.345 s, energy n/a"
std::string describe_cost(const RoleCost& cost);

class CostMeter {
 public:
  // `energy` null or not available: energy is n/a. Must outlive the meter.
  explicit CostMeter(const PowercapMeter* energy = &machine_powercap());
  CostMeter(const CostMeter&) = delete;
  CostMeter& operator=(const CostMeter&) = delete;

  RoleCost totals() const;           // any thread; open scopes count once they close
  void add_tokens(int64_t tokens);   // any thread
  const PowercapMeter* energy() const { return energy_; }   // null when energy is n/a

 private:
  friend class PhaseScope;
  void charge(Phase phase, double wall, double cpu, std::optional<double> joules, bool compute, bool shared);

  const PowercapMeter* energy_;
  mutable std::mutex mutex_;
  RoleCost totals_;
};

class PhaseScope {
 public:
  // Charges `meter` with what this thread does until the scope ends (or switches).
  PhaseScope(CostMeter& meter, Phase phase);
  // Charges the meter of the innermost scope open on this thread; without one, nothing.
  explicit PhaseScope(Phase phase);
  ~PhaseScope();
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

  // What follows is `phase` (the scope must be the innermost one open).
  void switch_to(Phase phase);

 private:
  void open(CostMeter* meter, Phase phase);
  // Ends this thread's current segment and charges it to the innermost scope's meter.
  static void end_segment();

  bool active_ = false;
  size_t depth_ = 0;   // this scope's place on its thread's stack of open scopes
};

}  // namespace cleave::metrics
