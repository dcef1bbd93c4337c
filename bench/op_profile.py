#!/usr/bin/env python3
"""Where one training step's time goes, by operation.

Reads the Chrome trace that train_step_bench or bench/train_step_eager.py
writes with CLEAVE_BENCH_OP_TRACE=FILE (the profiler of LibTorch or PyTorch:
one complete event per op and autograd node, nested by time on each thread;
with --only naming one configuration) and prints, for
the ops with the most self time (time not spent in a nested op), their calls,
self and total milliseconds and share of the step's wall time. Times are
under the profiler, so each op pays its bookkeeping; read shares, not speed.

Usage: python3 bench/op_profile.py TRACE.json [--top N]
"""
import argparse
import collections
import json
import sys


def self_times(events):
    """{name: [calls, self_us, total_us]} over complete events, self time per thread."""
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            by_thread[e.get("tid")].append(e)
    table = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for thread_events in by_thread.values():
        thread_events.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end, name, child_us]
        def close(entry):
            end, name, dur, child = entry
            row = table[name]
            row[0] += 1
            row[1] += dur - child
            row[2] += dur
        for e in thread_events:
            start, dur = float(e["ts"]), float(e["dur"])
            while stack and stack[-1][0] <= start:
                close(stack.pop())
            if stack:
                stack[-1][3] += dur
            stack.append([start + dur, e["name"], dur, 0.0])
        while stack:
            close(stack.pop())
    return table


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("trace", help="the trace train_step_bench wrote (CLEAVE_BENCH_OP_TRACE)")
    p.add_argument("--top", type=int, default=25, help="ops to list (default: 25)")
    args = p.parse_args()
    try:
        with open(args.trace) as f:
            events = json.load(f)
    except (OSError, ValueError) as error:
        sys.exit(f"op_profile: cannot read {args.trace}: {error}")
    complete = [e for e in events if isinstance(e, dict) and e.get("ph") == "X"]
    if not complete:
        sys.exit(f"op_profile: {args.trace} holds no complete ('X') events")
    wall_us = max(e["ts"] + e["dur"] for e in complete) - min(e["ts"] for e in complete)
    table = self_times(complete)
    print(f"step wall time under the profiler: {wall_us / 1e3:.1f} ms, {len(complete)} events")
    print(f"{'op':58} {'calls':>6} {'self ms':>9} {'total ms':>9} {'self share':>10}")
    for name, (calls, self_us, total_us) in sorted(table.items(), key=lambda kv: -kv[1][1])[:args.top]:
        print(f"{name[:58]:58} {calls:6d} {self_us / 1e3:9.1f} {total_us / 1e3:9.1f} "
              f"{100 * self_us / wall_us:9.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
