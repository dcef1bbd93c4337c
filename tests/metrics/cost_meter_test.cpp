// Per-role, per-phase cost: nested scopes are exclusive, compute phases are
// charged the process's CPU (work of helper threads included, as LibTorch's
// intra-op threads do it) and waiting phases only their own thread's, phases
// that overlap another thread's compute are marked shared, and energy comes
// from a powercap meter when there is one and is n/a when there is not.
#include "metrics/cost_meter.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <unistd.h>

#include "metrics/cpu_clock.h"

namespace cleave::metrics {
namespace {

namespace fs = std::filesystem;

// Keeps this thread busy for `seconds` of its own CPU time.
void burn(double seconds) {
  const double until = thread_cpu_seconds() + seconds;
  volatile double sink = 0;
  while (thread_cpu_seconds() < until) {
    for (int i = 0; i < 1000; ++i) sink = sink + i * 1e-9;
  }
}

// A one-shot signal between two threads.
class Signal {
 public:
  void set() {
    std::lock_guard<std::mutex> lock(mutex_);
    set_ = true;
    changed_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return set_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool set_ = false;
};

const PowercapMeter kNoEnergy("/nonexistent/cleave/powercap");

TEST(CostMeterTest, NestedScopesAreChargedExclusively) {
  CostMeter meter(&kNoEnergy);
  const CpuSample start = CpuSample::now();
  {
    PhaseScope role(meter, Phase::other);
    burn(0.02);
    {
      PhaseScope forward(Phase::forward);   // the innermost scope's meter: `meter`
      burn(0.03);
      PhaseScope codec(Phase::codec);
      burn(0.01);
    }
    role.switch_to(Phase::wire);
    burn(0.01);
  }
  const CpuSample end = CpuSample::now();
  const RoleCost cost = meter.totals();
  EXPECT_NEAR(cost[Phase::other].cpu_seconds, 0.02, 0.005);
  EXPECT_NEAR(cost[Phase::forward].cpu_seconds, 0.03, 0.005);
  EXPECT_NEAR(cost[Phase::codec].cpu_seconds, 0.01, 0.005);
  EXPECT_NEAR(cost[Phase::wire].cpu_seconds, 0.01, 0.005);
  EXPECT_EQ(cost[Phase::backward].cpu_seconds, 0.0);
  // No moment of the thread went to two phases (the wall clock runs at least
  // as fast as the CPU clock; how much faster depends on the machine's load).
  EXPECT_LE(cost.wall_seconds(), end.wall - start.wall);
  EXPECT_GE(cost.wall_seconds(), 0.07);
  EXPECT_LE(cost.cpu_seconds(), end.process_cpu - start.process_cpu);
  EXPECT_EQ(cost.shared_segments, 0);
}

TEST(CostMeterTest, ComputePhasesIncludeHelperThreadsAndWaitingPhasesDoNot) {
  CostMeter meter(&kNoEnergy);
  {
    // The calling thread waits while a helper computes for it, as LibTorch's
    // intra-op threads do: the compute phase is charged the helper's CPU.
    PhaseScope forward(meter, Phase::forward);
    std::thread([] { burn(0.05); }).join();
  }
  {
    // A peer computing while this role waits is the peer's cost.
    PhaseScope wire(meter, Phase::wire);
    std::thread([] { burn(0.05); }).join();
  }
  const RoleCost cost = meter.totals();
  EXPECT_GE(cost[Phase::forward].cpu_seconds, 0.045);
  EXPECT_LT(cost[Phase::wire].cpu_seconds, 0.01);
}

TEST(CostMeterTest, OverlappingComputePhasesAreSharedAndChargedTheirOwnThread) {
  CostMeter a(&kNoEnergy), b(&kNoEnergy);
  Signal a_open, b_open;
  std::thread other([&] {
    a_open.wait();
    {
      PhaseScope forward(b, Phase::forward);
      b_open.set();
      burn(0.03);
    }
  });
  {
    PhaseScope backward(a, Phase::backward);
    a_open.set();
    b_open.wait();
    burn(0.03);
  }
  other.join();
  for (const CostMeter* meter : {&a, &b}) {
    const RoleCost cost = meter->totals();
    EXPECT_EQ(cost.shared_segments, 1);
    EXPECT_NEAR(cost.cpu_seconds(), 0.03, 0.01);   // its own thread, not both
  }
}

TEST(CostMeterTest, AScopeWithoutAMeterOnItsThreadChargesNothing) {
  CostMeter meter(&kNoEnergy);
  PhaseScope role(meter, Phase::other);
  std::thread([] {
    PhaseScope codec(Phase::codec);   // no role on this thread
    burn(0.01);
  }).join();
  role.switch_to(Phase::wire);
  EXPECT_EQ(meter.totals()[Phase::codec].cpu_seconds, 0.0);
}

TEST(CostMeterTest, SwitchingAScopeUnderAnInnerOneIsRefused) {
  CostMeter meter(&kNoEnergy);
  PhaseScope role(meter, Phase::other);
  PhaseScope inner(Phase::forward);
  EXPECT_THROW(role.switch_to(Phase::wire), std::logic_error);
}

TEST(CostMeterTest, EnergyOfComputePhasesFromAFakePowercapTree) {
  const fs::path root = fs::temp_directory_path() / ("cleave_cost_rapl_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "intel-rapl:0");
  auto write = [&](const std::string& file, const std::string& text) {
    std::ofstream(root / "intel-rapl:0" / file, std::ios::trunc) << text << "\n";
  };
  write("name", "package-0");
  write("max_energy_range_uj", "10000000");
  write("energy_uj", "9000000");
  const PowercapMeter powercap(root.string());
  ASSERT_TRUE(powercap.available()) << powercap.status();

  CostMeter meter(&powercap);
  {
    PhaseScope forward(meter, Phase::forward);
    write("energy_uj", "1500000");   // wrapped: 1 J to the range, 1.5 J after
  }
  {
    PhaseScope wire(meter, Phase::wire);   // waiting: no energy of its own
    write("energy_uj", "4000000");
  }
  meter.add_tokens(500);
  const RoleCost cost = meter.totals();
  ASSERT_TRUE(cost.joules());
  EXPECT_DOUBLE_EQ(*cost.joules(), 2.5);
  EXPECT_DOUBLE_EQ(*cost.joules_per_token(), 2.5 / 500);
  EXPECT_NE(describe_cost(cost).find("energy 2.500 J (5.000 mJ/token)"), std::string::npos) << describe_cost(cost);
  fs::remove_all(root);
}

TEST(CostMeterTest, WithoutAMeterEnergyIsNotAvailable) {
  CostMeter meter(&kNoEnergy);
  EXPECT_EQ(meter.energy(), nullptr);
  {
    PhaseScope forward(meter, Phase::forward);
    burn(0.001);
  }
  meter.add_tokens(100);
  const RoleCost cost = meter.totals();
  EXPECT_FALSE(cost.joules());
  EXPECT_FALSE(cost.joules_per_token());
  ASSERT_TRUE(cost.cpu_seconds_per_token());
  EXPECT_DOUBLE_EQ(*cost.cpu_seconds_per_token(), cost.cpu_seconds() / 100);
  EXPECT_NE(describe_cost(cost).find("energy n/a"), std::string::npos) << describe_cost(cost);
}

TEST(CostMeterTest, CostsAddAndSubtractPhaseByPhase) {
  RoleCost a, b;
  a[Phase::forward].cpu_seconds = 1.5;
  a[Phase::wire].wall_seconds = 2.0;
  a.tokens = 100;
  a.metered_segments = 3;
  b[Phase::forward].cpu_seconds = 0.5;
  b.tokens = 40;
  b.metered_segments = 1;
  RoleCost sum = a;
  sum += b;
  EXPECT_DOUBLE_EQ(sum[Phase::forward].cpu_seconds, 2.0);
  EXPECT_EQ(sum.tokens, 140);
  const RoleCost difference = sum - b;
  EXPECT_DOUBLE_EQ(difference[Phase::forward].cpu_seconds, 1.5);
  EXPECT_DOUBLE_EQ(difference.wall_seconds(), 2.0);
  EXPECT_EQ(difference.metered_segments, 3);
  EXPECT_EQ(difference.tokens, 100);
}

}  // namespace
}  // namespace cleave::metrics
