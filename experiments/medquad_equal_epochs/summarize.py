#!/usr/bin/env python3
"""Reads the runs of experiments/medquad_equal_epochs/run.sh.

  summarize.py best OUT client   prints LR_<method>=<lr> (lowest validation perplexity after tuning)
  summarize.py best OUT server   prints SERVER_LR_fedadam=<eta>
  summarize.py report OUT HERE CLEAVE JOBS
                                 writes HERE/results.md, HERE/curves_tokens.png, HERE/curves_bytes.png

Standard library only. The test set (eval_perplexity) is only read for the
report, never to choose anything: tuning reads validation_perplexity.
"""
import csv
import datetime
import glob
import math
import os
import platform
import statistics
import subprocess
import sys

TOKENS_PER_STEP = 8 * 128   # data.batch_size x data.seq_len of config.yaml
METHODS = [
    ("centralized", "centralized (one place, no split)"),
    ("sfl_v1", "split-federated SFL-V1, u_shaped, FedAvg"),
    ("sfl_v1_vanilla", "split-federated SFL-V1, vanilla, FedAvg"),
    ("sfl_v2", "split-federated SFL-V2, u_shaped, FedAvg"),
    ("fedadam", "split-federated SFL-V1, u_shaped, FedAdam"),
    ("fedavg_nosplit", "FedAvg without split"),
    ("local_only", "local-only (mean over sites)"),
]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def number(cell):
    return float(cell) if cell not in ("", None) else None


def metrics_path(run, method):
    if method in ("centralized",):
        return os.path.join(run, "baselines", "centralized", "metrics.csv")
    return os.path.join(run, "metrics.csv")


def converged(run):
    with open(os.path.join(run, "summary.md")) as f:
        return "(converged)" in f.read()


def wall(run):
    with open(os.path.join(run, "wall_seconds")) as f:
        return float(f.read())


def best(out, kind):
    if kind == "client":
        for method in ("sfl_v1", "sfl_v2", "fedavg_nosplit", "centralized"):
            scores = {}
            for run in glob.glob(os.path.join(out, "tune", method, "lr*")):
                last = rows(metrics_path(run, method))[-1]
                scores[os.path.basename(run)[2:]] = number(last["validation_perplexity"])
            lr = min(scores, key=lambda k: scores[k])
            print(f"LR_{method}={lr}")
    else:
        eta, tau, _ = min(server_tuning(out), key=lambda f: f[2])
        print(f"SERVER_LR_fedadam={eta}")
        print(f"SERVER_TAU_fedadam={tau}")


def server_tuning(out):
    """(eta, tau, validation perplexity) of each FedAdam tuning run, by eta then tau."""
    found = []
    for run in glob.glob(os.path.join(out, "tune", "fedadam", "server_lr*_tau*")):
        eta, tau = os.path.basename(run)[len("server_lr"):].split("_tau")
        found.append((eta, tau, number(rows(os.path.join(run, "metrics.csv"))[-1]["validation_perplexity"])))
    return sorted(found, key=lambda f: (float(f[0]), float(f[1])))


def rounds_cap(run):
    """federation.rounds of a run, from its config.resolved.yaml."""
    in_federation = False
    with open(os.path.join(run, "config.resolved.yaml")) as f:
        for line in f:
            if not line.startswith(" "):
                in_federation = line.startswith("federation:")
            elif in_federation and line.strip().startswith("rounds:"):
                return int(line.split(":", 1)[1])
    raise ValueError(f"{run}/config.resolved.yaml has no federation.rounds")


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def local_only(run):
    """(mean global test perplexity, tokens trained) of a run's local-only baseline."""
    sites = rows(os.path.join(run, "baselines", "local_only", "sites.csv"))
    # A site with too little data for one row trained nothing: left out, as in summary.md.
    ppl = statistics.mean(float(s["global_perplexity"]) for s in sites if s["global_perplexity"])
    tokens = sum(int(s["steps"]) for s in sites) * TOKENS_PER_STEP
    return ppl, tokens


class Run:
    """One method at one seed, to convergence."""

    def __init__(self, out, seed, method):
        self.dir = os.path.join(out, f"seed{seed}", "centralized" if method == "local_only" else method)
        self.method = method
        if method == "local_only":
            self.final, self.tokens = local_only(self.dir)
            self.curve, self.bytes, self.epochs, self.converged = [], 0, None, None
        else:
            self.curve = rows(metrics_path(self.dir, method))
            last = self.curve[-1]
            self.final = number(last["eval_perplexity"])
            self.tokens = int(last["cumulative_train_tokens"])
            self.bytes = int(last["cumulative_bytes"])
            self.epochs = len(self.curve)
            self.converged = converged(self.dir)
        self.seconds = wall(self.dir)

    def at_epoch(self, epochs, out, seed):
        if self.method in ("centralized", "local_only"):
            fixed = os.path.join(out, f"seed{seed}", f"centralized_{epochs}epochs")
            if self.method == "local_only":
                return local_only(fixed)[0]
            return number(rows(metrics_path(fixed, "centralized"))[-1]["eval_perplexity"])
        return number(self.curve[epochs - 1]["eval_perplexity"]) if len(self.curve) >= epochs else None


def report(out, here, cleave, jobs):
    seeds = sorted(int(os.path.basename(d)[4:]) for d in glob.glob(os.path.join(out, "seed*")))
    runs = {m: [Run(out, s, m) for s in seeds] for m, _ in METHODS}
    reference = {s: r.final for s, r in zip(seeds, runs["centralized"])}
    lines = ["<!-- written by experiments/medquad_equal_epochs/summarize.py; do not edit by hand -->", ""]
    # Every run's own wall time, summed over every invocation (run.sh resumes:
    # a second invocation only runs what the first left, maybe hours later).
    walls = [float(open(f).read()) for f in glob.glob(os.path.join(out, "**", "wall_seconds"), recursive=True)]
    lines.append(f"Command: `experiments/medquad_equal_epochs/run.sh` (JOBS={jobs}, `{cleave}`), "
                 f"{sum(walls) / 60:.0f} minutes of runs in all (each run's wall time, summed; {jobs} at a time), on "
                 f"{os.cpu_count()} cores shared with other work ({platform.machine()}, "
                 f"{datetime.date.today().isoformat()}); {len(walls)} runs; seeds {', '.join(map(str, seeds))}.")
    lines.append("")

    lines.append("## Tuning (seed 1, validation set, 3 epochs)")
    lines.append("")
    lines.append("| method | learning rate | validation perplexity | chosen |")
    lines.append("|---|---|---|---|")
    for method in ("sfl_v1", "sfl_v2", "fedavg_nosplit", "centralized"):
        found = []
        for run in sorted(glob.glob(os.path.join(out, "tune", method, "lr*")), key=lambda d: float(d.split("lr")[-1])):
            found.append((os.path.basename(run)[2:], number(rows(metrics_path(run, method))[-1]["validation_perplexity"])))
        chosen = min(found, key=lambda f: f[1])[0]
        for lr, v in found:
            lines.append(f"| {method} | {lr} | {v:.3f} | {'yes' if lr == chosen else ''} |")
    found = server_tuning(out)
    chosen = min(found, key=lambda f: f[2])
    for eta, tau, v in found:
        lines.append(f"| fedadam (server_lr, server_tau; client lr of sfl_v1) | {eta}, {tau} | {v:.3f} | "
                     f"{'yes' if (eta, tau, v) == chosen else ''} |")
    lines.append("")

    lines.append("## At convergence")
    lines.append("")
    lines.append("Each run stops when its validation perplexity is not 1% below its best for 2 evaluations "
                 "(an evaluation per epoch), or after 12 epochs. Test perplexity of the final adapters, "
                 "mean ± standard deviation over the seeds; \"vs centralized\": the mean over seeds of each "
                 "seed's ratio to centralized on the same partition and test set.")
    lines.append("")
    lines.append("| method | test perplexity | vs centralized | epochs (converged) | tokens trained | bytes on the wire | wall time per run |")
    lines.append("|---|---|---|---|---|---|---|")
    for method, label in METHODS:
        rs = runs[method]
        ratios = [r.final / reference[s] - 1 for s, r in zip(seeds, rs)]
        ratio = f"{100 * statistics.mean(ratios):+.1f}%" + (f" ± {100 * statistics.stdev(ratios):.1f}" if len(ratios) > 1 else "")
        if method == "centralized":
            ratio = "-"
        epochs = "-" if rs[0].epochs is None else (
            f"{statistics.mean(r.epochs for r in rs):.1f} ({sum(1 for r in rs if r.converged)}/{len(rs)})")
        tokens = statistics.mean(r.tokens for r in rs)
        mb = statistics.mean(r.bytes for r in rs) / 1e6
        secs = "(with centralized)" if method == "local_only" else f"{statistics.mean(r.seconds for r in rs):.0f} s"
        lines.append(f"| {label} | {mean_std([r.final for r in rs])} | {ratio} | {epochs} | {tokens / 1e6:.2f} M | "
                     f"{mb:.0f} MB | {secs} |")
    lines.append("")

    lines.append("## At equal epochs")
    lines.append("")
    lines.append("Test perplexity after 1 and 3 passes over every site's training data. A fleet's round k is k "
                 "epochs (each round a fresh schedule per site); centralized and local-only ran separate 1- and "
                 "3-epoch runs so that their one schedule ends there.")
    lines.append("")
    lines.append("| method | 1 epoch | vs centralized | 3 epochs | vs centralized |")
    lines.append("|---|---|---|---|---|")
    ref = {e: [runs["centralized"][i].at_epoch(e, out, s) for i, s in enumerate(seeds)] for e in (1, 3)}
    for method, label in METHODS:
        cells = [label]
        for e in (1, 3):
            values = [r.at_epoch(e, out, s) for s, r in zip(seeds, runs[method])]
            cells.append(mean_std(values))
            pairs = [v / c - 1 for v, c in zip(values, ref[e]) if v is not None and c]
            cells.append("-" if method == "centralized" or not pairs else f"{100 * statistics.mean(pairs):+.1f}%")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")

    long_runs = {m: [Run(out, s, m + "_long") for s in seeds
                     if os.path.exists(os.path.join(out, f"seed{s}", m + "_long", "summary.md"))]
                 for m in ("sfl_v1", "fedavg_nosplit")}
    if any(long_runs.values()):
        lines.append("## Beyond the cap")
        lines.append("")
        lines.append("The averaged methods that reached the 12-epoch cap, again with at most "
                     f"{rounds_cap(long_runs['sfl_v1'][0].dir if long_runs['sfl_v1'] else long_runs['fedavg_nosplit'][0].dir)}"
                     " epochs and the same rule to stop (their first 12 epochs are the capped runs'); centralized as "
                     "above (it converged before the cap).")
        lines.append("")
        lines.append("| method | test perplexity | vs centralized | epochs (converged) | wall time per run |")
        lines.append("|---|---|---|---|---|")
        for method, label in METHODS:
            rs = long_runs.get(method)
            if not rs:
                continue
            ratios = [r.final / reference[int(os.path.basename(os.path.dirname(r.dir))[4:])] - 1 for r in rs]
            ratio = f"{100 * statistics.mean(ratios):+.1f}%" + (
                f" ± {100 * statistics.stdev(ratios):.1f}" if len(ratios) > 1 else "")
            lines.append(f"| {label} | {mean_std([r.final for r in rs])} | {ratio} | "
                         f"{statistics.mean(r.epochs for r in rs):.1f} ({sum(1 for r in rs if r.converged)}/{len(rs)}) | "
                         f"{statistics.mean(r.seconds for r in rs):.0f} s |")
        lines.append("")

    # Mean curves over the seeds (each round averaged over the seeds that reached it).
    curves = os.path.join(out, "curves")
    os.makedirs(curves, exist_ok=True)
    for method, _ in METHODS:
        if method == "local_only":
            continue
        longest = max(len(r.curve) for r in runs[method])
        with open(os.path.join(curves, method + ".csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["round", "eval_perplexity", "cumulative_train_tokens", "cumulative_bytes", "seeds"])
            for k in range(longest):
                got = [r.curve[k] for r in runs[method] if len(r.curve) > k]
                w.writerow([k + 1, statistics.mean(float(g["eval_perplexity"]) for g in got),
                            statistics.mean(float(g["cumulative_train_tokens"]) for g in got),
                            statistics.mean(float(g["cumulative_bytes"]) for g in got), len(got)])
    fleets = [m for m, _ in METHODS if m not in ("centralized", "local_only")]
    plot = [cleave, "plot", "--column", "eval_perplexity", "--log-y", "true"]
    subprocess.run(plot + [a for m in ["centralized"] + fleets for a in ("--run", f"{m}={curves}/{m}.csv")] +
                   ["--x", "cumulative_train_tokens", "--title", "MedQuAD test perplexity vs tokens trained",
                    "--out", os.path.join(here, "curves_tokens.png")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(plot + [a for m in fleets for a in ("--run", f"{m}={curves}/{m}.csv")] +
                   ["--x", "cumulative_bytes", "--title", "MedQuAD test perplexity vs bytes on the wire",
                    "--out", os.path.join(here, "curves_bytes.png")], check=True, stdout=subprocess.DEVNULL)
    lines.append("Curves (mean over the seeds that reached each epoch; log10 perplexity): "
                 "[curves_tokens.png](curves_tokens.png) against tokens trained, "
                 "[curves_bytes.png](curves_bytes.png) against bytes on the wire (fleets only: centralized and "
                 "local-only send nothing).")
    lines.append("")
    with open(os.path.join(here, "results.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "best":
        best(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit(__doc__)
