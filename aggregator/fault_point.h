// Named points where a fault-injection test can stop a service in the middle
// of something it must survive being killed in (a checkpoint half written).
//
// CLEAVE_FAULT_POINT=NAME[:N] in a service's environment makes the N-th pass
// (default the first) through fault_point(NAME) print
//   fault point NAME reached (pass N): stopping for the test
// on stderr and stop the process with SIGSTOP, so the test, which waits for
// that line, can kill -9 it there. Without the variable fault_point() costs
// one getenv per call and does nothing; it never runs on a hot path.
//
// Points: aggregator.checkpoint.adapters_written (the new round's files are
// on disk, state.json not yet); site.round_assigned (a site got a round's
// assignment and has not trained: the round waits for it).
#pragma once

namespace cleave::aggregator {

void fault_point(const char* name);

}  // namespace cleave::aggregator
