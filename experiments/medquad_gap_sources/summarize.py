#!/usr/bin/env python3
"""Reads the runs of experiments/medquad_gap_sources/run.sh.

  summarize.py best OUT METHOD        prints the learning rate with the lowest validation perplexity
                                      among OUT/tune/METHOD/lr* (METHOD: sfl_v1, sfl_v1_sequential or
                                      centralized)
  summarize.py report OUT HERE CLEAVE JOBS
                                      writes HERE/results.md

The runs' layout and reading are medquad_equal_epochs' (its summarize.py is
imported): OUT/<partition>/seed<k>/{sfl_v1,sfl_v1_sequential,centralized,centralized_<e>epochs}.
Tuning reads validation perplexity only; the test set is read for the report.
"""
import datetime
import glob
import os
import platform
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "medquad_equal_epochs"))
from summarize import Run, client_tuning, mean_std, rows  # noqa: E402

PARTITIONS = [
    ("natural", "natural: 11 sites, one per source file"),
    ("iid11", "iid: 11 sites, records dealt at random"),
    ("iid1", "one site holding every record"),
]


def best(out, method):
    print(min(client_tuning(out, method), key=lambda f: f[1])[0])


def seeds_of(out):
    return sorted(int(os.path.basename(d)[4:]) for d in glob.glob(os.path.join(out, "seed*")))


def gap_cell(values, references):
    """Mean ± standard deviation over seeds of value / reference - 1, in %."""
    pairs = [v / r - 1 for v, r in zip(values, references) if v is not None and r]
    if not pairs:
        return "-"
    text = f"{100 * statistics.mean(pairs):+.1f}%"
    return text + (f" ± {100 * statistics.stdev(pairs):.1f}" if len(pairs) > 1 else "")


def report(out, here, cleave, jobs):
    lines = ["<!-- written by experiments/medquad_gap_sources/summarize.py; do not edit by hand -->", ""]
    walls = [float(open(f).read()) for f in glob.glob(os.path.join(out, "**", "wall_seconds"), recursive=True)]
    seeds = seeds_of(os.path.join(out, "natural"))
    lines.append(f"Command: `experiments/medquad_gap_sources/run.sh` (JOBS={jobs}, `{cleave}`), "
                 f"{sum(walls) / 60:.0f} minutes of runs in all (each run's wall time, summed; {jobs} at a time), on "
                 f"{os.cpu_count()} cores shared with other work ({platform.machine()}, "
                 f"{datetime.date.today().isoformat()}); {len(walls)} runs; seeds {', '.join(map(str, seeds))}.")
    lines.append("")
    lines.append("Split-federated SFL-V1 (u_shaped, FedAvg) and centralized training on three partitions of the "
                 "same 1% of MedQuAD, scored on one test set per seed (10% of every source file, the same for every "
                 "partition); on the two 11-site partitions also with the sites one after another instead of "
                 "averaged. Gap: the mean over seeds of each seed's split-federated test perplexity over "
                 "centralized's on the same partition, after the same number of passes over the data (centralized "
                 "ran separate 1- and 3-epoch runs so that its one schedule ends there) and at convergence "
                 "(validation perplexity not 1% below its best for 2 epochs; fleets at most 24 epochs, centralized "
                 "12).")
    lines.append("")

    lines.append("## Tuning (seed 1, validation set, 3 epochs)")
    lines.append("")
    lines.append("| run | learning rate | validation perplexity | chosen |")
    lines.append("|---|---|---|---|")
    tuned = [(p, "sfl_v1", f"SFL-V1 {'alone' if p == 'iid1' else 'averaged'}, {label}") for p, label in PARTITIONS]
    tuned += [(p, "sfl_v1_sequential", f"SFL-V1 one after another, {label}") for p, label in PARTITIONS
              if os.path.isdir(os.path.join(out, p, "tune", "sfl_v1_sequential"))]
    tuned.append(("natural", "centralized", "centralized (every partition)"))
    for p, method, label in tuned:
        found = client_tuning(os.path.join(out, p), method)
        chosen = min(found, key=lambda f: f[1])[0]
        for lr, v in found:
            lines.append(f"| {label} | {lr} | {v:.3f} | {'yes' if lr == chosen else ''} |")
    lines.append("")

    lines.append("## The gap, partition by partition")
    lines.append("")
    lines.append("Test perplexity, mean ± standard deviation over the seeds. Averaged: every site every round, "
                 "FedAvg (SFL-V1). One after another: one site per round in passes "
                 "(`federation.sampling: passes`, `clients_per_round: 1`), each site starting from the adapters "
                 "the one before it left, 11 rounds an epoch.")
    lines.append("")
    lines.append("| partition | sites train | centralized, 1 epoch | split-federated, 1 epoch | gap "
                 "| centralized, 3 epochs | split-federated, 3 epochs | gap | centralized, converged "
                 "| split-federated, converged | gap | split-federated epochs (converged) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for p, label in PARTITIONS:
        pout = os.path.join(out, p)
        for method, how in (("sfl_v1", "averaged" if p != "iid1" else "alone (one site)"),
                            ("sfl_v1_sequential", "one after another")):
            ss = [s for s in seeds_of(pout) if os.path.exists(os.path.join(pout, f"seed{s}", method, "summary.md"))]
            if not ss:
                continue
            fleet = [Run(pout, s, method) for s in ss]
            central = [Run(pout, s, "centralized") for s in ss]
            cells = [label, how]
            for e in (1, 3):
                c = [r.at_epoch(e, pout, r.seed) for r in central]
                f = [r.at_epoch(e, pout, r.seed) for r in fleet]
                cells += [mean_std(c), mean_std(f), gap_cell(f, c)]
            c = [r.final for r in central]
            f = [r.final for r in fleet]
            cells += [mean_std(c), mean_std(f), gap_cell(f, c),
                      f"{statistics.mean(r.epochs for r in fleet):.1f} "
                      f"({sum(1 for r in fleet if r.converged)}/{len(fleet)})"]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    with open(os.path.join(here, "results.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "best":
        best(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit(__doc__)
