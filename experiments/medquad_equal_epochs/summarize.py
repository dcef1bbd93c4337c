#!/usr/bin/env python3
"""Reads the runs of experiments/medquad_equal_epochs/run.sh.

  summarize.py best OUT client   prints LR_<method>=<lr> (lowest validation perplexity after tuning)
  summarize.py best OUT server [DIR]
                                 prints SERVER_LR_<DIR>=<eta> and SERVER_TAU_<DIR>=<tau> (DIR: fedadam)
  summarize.py best OUT frequency
                                 prints LR_sfl_v1_x<k>=<lr> for each tuned frequency k
  summarize.py best OUT fedavgm  prints FEDAVGM_ETA=<eta> and FEDAVGM_MOMENTUM=<momentum>
  summarize.py best OUT product  prints LR_sfl_v1_product=<lr>
  summarize.py best OUT across   prints LR_sfl_v1_across=<lr>
  summarize.py best OUT x4_across
                                 prints LR_sfl_v1_x4_across=<lr>
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


def best(out, kind, method="fedadam"):
    if kind in ("client", "frequency", "product", "across", "x4_across"):
        methods = {"client": ("sfl_v1", "sfl_v2", "fedavg_nosplit", "centralized"),
                   "frequency": frequency_methods(out), "product": ("sfl_v1_product",),
                   "across": ("sfl_v1_across",), "x4_across": ("sfl_v1_x4_across",)}[kind]
        for method in methods:
            found = client_tuning(out, method)
            print(f"LR_{method}={min(found, key=lambda f: f[1])[0]}")
    elif kind == "fedavgm":
        eta, momentum, _ = min(fedavgm_tuning(out), key=lambda f: f[2])
        print(f"FEDAVGM_ETA={eta}")
        print(f"FEDAVGM_MOMENTUM={momentum}")
    else:
        eta, tau, _ = min(server_tuning(out, method), key=lambda f: f[2])
        print(f"SERVER_LR_{method}={eta}")
        print(f"SERVER_TAU_{method}={tau}")


def frequency_methods(out):
    """The tuned SFL-V1 runs at k rounds per epoch (tune/sfl_v1_x<k>), by k."""
    found = [os.path.basename(d) for d in glob.glob(os.path.join(out, "tune", "sfl_v1_x*"))]
    found = [m for m in found if m.split("_x")[1].isdigit()]   # not sfl_v1_x4_across (stage 8)
    return sorted(found, key=lambda m: int(m.split("_x")[1]))


def client_tuning(out, method):
    """(learning rate, validation perplexity) of each tuning run of a method, by learning rate."""
    found = []
    for run in glob.glob(os.path.join(out, "tune", method, "lr*")):
        found.append((os.path.basename(run)[2:], number(rows(metrics_path(run, method))[-1]["validation_perplexity"])))
    return sorted(found, key=lambda f: float(f[0]))


def server_tuning(out, method="fedadam"):
    """(eta, tau, validation perplexity) of each FedAdam tuning run, by eta then tau."""
    found = []
    for run in glob.glob(os.path.join(out, "tune", method, "server_lr*_tau*")):
        eta, tau = os.path.basename(run)[len("server_lr"):].split("_tau")
        found.append((eta, tau, number(rows(os.path.join(run, "metrics.csv"))[-1]["validation_perplexity"])))
    return sorted(found, key=lambda f: (float(f[0]), float(f[1])))


def fedavgm_tuning(out):
    """(eta, momentum, validation perplexity) of each FedAvgM tuning run, by eta then momentum."""
    found = []
    for run in glob.glob(os.path.join(out, "tune", "fedavgm", "eta*_momentum*")):
        eta, momentum = os.path.basename(run)[len("eta"):].split("_momentum")
        found.append((eta, momentum, number(rows(os.path.join(run, "metrics.csv"))[-1]["validation_perplexity"])))
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
        self.seed = seed
        if method == "local_only":
            self.final, self.tokens = local_only(self.dir)
            self.curve, self.bytes, self.epochs, self.converged = [], 0, None, None
        else:
            self.all_rows = rows(metrics_path(self.dir, method))
            # The evaluated rounds, one per epoch: a fleet at k rounds per epoch
            # evaluates every k-th round and writes 0 in between.
            self.curve = [r for r in self.all_rows if number(r["eval_perplexity"])]
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


def ratio_cell(runs, reference):
    """Mean ± standard deviation over seeds of each run's test perplexity relative to its seed's centralized."""
    ratios = [r.final / reference[r.seed] - 1 for r in runs]
    return f"{100 * statistics.mean(ratios):+.1f}%" + (f" ± {100 * statistics.stdev(ratios):.1f}" if len(ratios) > 1 else "")


def frequency_section(out, seeds, runs, long_runs, frequencies, reference):
    """Section 4 of run.sh: SFL-V1 (and FedAdam) aggregating k times per epoch."""
    lines = ["## Aggregating more often", ""]
    top = frequencies[-1].split("_x")[1]
    lines.append("SFL-V1 (u_shaped) with k rounds per epoch: `federation.local_epochs` 1/k, so every round each "
                 "site trains on a fresh random 1/k of its training data (k rounds are one epoch in expectation); "
                 "evaluated and stopped once per epoch by the same rule, at most "
                 f"{rounds_cap(os.path.join(out, 'seed%d' % seeds[0], frequencies[0])) // int(frequencies[0].split('_x')[1])}"
                 " epochs. The client learning rate was tuned again at each k on the validation set (3 epochs, "
                 f"seed 1); FedAdam's server settings at k = {top} with the client learning rate of SFL-V1 at that k.")
    lines.append("")
    lines.append("| tuning run | setting | validation perplexity | chosen |")
    lines.append("|---|---|---|---|")
    for method in frequencies:
        found = client_tuning(out, method)
        chosen = min(found, key=lambda f: f[1])[0]
        for lr, v in found:
            lines.append(f"| SFL-V1, {method.split('_x')[1]} rounds per epoch | lr {lr} | {v:.3f} | "
                         f"{'yes' if lr == chosen else ''} |")
    found = server_tuning(out, f"fedadam_x{top}")
    if found:
        chosen = min(found, key=lambda f: f[2])
        for eta, tau, v in found:
            lines.append(f"| FedAdam, {top} rounds per epoch | server_lr {eta}, server_tau {tau} | {v:.3f} | "
                         f"{'yes' if (eta, tau, v) == chosen else ''} |")
    lines.append("")
    lines.append("Test perplexity at convergence and after 1 and 3 epochs, mean ± standard deviation over the seeds; "
                 "\"vs centralized\" as above. The 1-round rows are the runs above (SFL-V1 FedAvg: \"beyond the "
                 "cap\"; FedAdam: capped at 12 epochs).")
    lines.append("")
    lines.append("| method | rounds per epoch | test perplexity | vs centralized | epochs (converged) | 1 epoch | 3 epochs "
                 "| bytes on the wire | wall time per run |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    ref = epoch_reference(out, seeds, runs)
    table = [("split-federated SFL-V1, u_shaped, FedAvg", 1, long_runs.get("sfl_v1") or runs["sfl_v1"])]
    table += [("split-federated SFL-V1, u_shaped, FedAvg", int(m.split("_x")[1]), found_runs(out, seeds, m))
              for m in frequencies]
    table.append(("split-federated SFL-V1, u_shaped, FedAdam", 1, runs["fedadam"]))
    table.append(("split-federated SFL-V1, u_shaped, FedAdam", int(top), found_runs(out, seeds, f"fedadam_x{top}")))
    for label, k, rs in table:
        if rs:
            lines.append(convergence_row([label, str(k)], rs, out, reference, ref))
    lines.append("")
    return lines


CONVERGENCE_HEADER = [
    "| method | test perplexity | vs centralized | epochs (converged) | 1 epoch | 3 epochs "
    "| bytes on the wire | wall time per run |",
    "|---|---|---|---|---|---|---|---|",
]


def epoch_reference(out, seeds, runs):
    """Centralized's test perplexity after 1 and 3 epochs, per seed: {epochs: {seed: perplexity}}."""
    return {e: {s: runs["centralized"][i].at_epoch(e, out, s) for i, s in enumerate(seeds)} for e in (1, 3)}


def lr_tuning_table(out, method):
    """The client learning-rate tuning of a method as table lines, and the chosen rate."""
    found = client_tuning(out, method)
    chosen = min(found, key=lambda f: f[1])[0]
    lines = ["| learning rate | validation perplexity | chosen |", "|---|---|---|"]
    lines += [f"| {lr} | {v:.3f} | {'yes' if lr == chosen else ''} |" for lr, v in found]
    return lines, chosen


def convergence_row(first_cells, rs, out, reference, ref):
    """A table row: test perplexity at convergence, vs centralized, epochs, after 1 and 3 epochs
    (each vs centralized at that epoch), bytes on the wire and wall time, over the seeds' runs rs."""
    cells = first_cells + [mean_std([r.final for r in rs]), ratio_cell(rs, reference),
                           f"{statistics.mean(r.epochs for r in rs):.1f} ({sum(1 for r in rs if r.converged)}/{len(rs)})"]
    for e in (1, 3):
        values = [r.at_epoch(e, out, r.seed) for r in rs]
        pairs = [v / ref[e][r.seed] - 1 for v, r in zip(values, rs) if v is not None]
        cells.append(mean_std(values) + ("" if not pairs else f" ({100 * statistics.mean(pairs):+.1f}%)"))
    cells.append(f"{statistics.mean(r.bytes for r in rs) / 1e6:.0f} MB")
    cells.append(f"{statistics.mean(r.seconds for r in rs):.0f} s")
    return "| " + " | ".join(cells) + " |"


def fedavgm_section(out, seeds, runs, long_runs, reference):
    """Section 5 of run.sh: SFL-V1 with server momentum and a server learning rate."""
    lines = ["## Server momentum (FedAvgM)", ""]
    lines.append("SFL-V1 (u_shaped), one round per epoch, SFL-V1's client learning rate, with strategy `fedavgm`: "
                 "m = momentum m + d, x = x + eta m, d the sample-weighted mean delta (Hsu, Qi and Brown 2019). "
                 "(eta, momentum) tuned on the validation set (3 epochs, seed 1); then every seed with at most "
                 f"{rounds_cap(os.path.join(out, 'seed%d' % seeds[0], 'fedavgm'))} epochs and the same rule to stop. "
                 "FedAvg is eta 1, momentum 0 (its row: \"beyond the cap\").")
    lines.append("")
    lines.append("| eta | momentum | validation perplexity | chosen |")
    lines.append("|---|---|---|---|")
    found = fedavgm_tuning(out)
    chosen = min(found, key=lambda f: f[2])
    for eta, momentum, v in found:
        lines.append(f"| {eta} | {momentum} | {v:.3f} | {'yes' if (eta, momentum, v) == chosen else ''} |")
    lines.append("")
    lines += CONVERGENCE_HEADER
    ref = epoch_reference(out, seeds, runs)
    fedavg = long_runs.get("sfl_v1") or runs["sfl_v1"]
    lines.append(convergence_row(["split-federated SFL-V1, u_shaped, FedAvg"], fedavg, out, reference, ref))
    lines.append(convergence_row([f"split-federated SFL-V1, u_shaped, FedAvgM (eta {chosen[0]}, momentum "
                                  f"{chosen[1]})"], found_runs(out, seeds, "fedavgm"), out, reference, ref))
    lines.append("")
    return lines


def found_runs(out, seeds, method):
    return [Run(out, s, method) for s in seeds if os.path.exists(os.path.join(out, f"seed{s}", method, "summary.md"))]


def product_section(out, seeds, runs, long_runs, reference):
    """Section 6 of run.sh: SFL-V1 with lora.aggregation product."""
    lines = ["## LoRA-aware aggregation (product)", ""]
    lines.append("SFL-V1 (u_shaped), one round per epoch, `lora.aggregation: product`: the new global is the "
                 "sample-weighted mean of the sites' B A (and of the split server's copies), re-factored to rank "
                 "8 by truncated SVD, instead of A and B averaged on their own (`separate`). The client learning "
                 "rate tuned again on the validation set (3 epochs, seed 1); then every seed with at most "
                 f"{rounds_cap(os.path.join(out, 'seed%d' % seeds[0], 'sfl_v1_product'))} epochs and the same rule "
                 "to stop. Truncation error: ||M - B A||_F / ||M||_F of each round, mean over the rounds and seeds.")
    lines.append("")
    tuning, chosen = lr_tuning_table(out, "sfl_v1_product")
    lines += tuning + [""] + CONVERGENCE_HEADER
    ref = epoch_reference(out, seeds, runs)
    fedavg = long_runs.get("sfl_v1") or runs["sfl_v1"]
    product = found_runs(out, seeds, "sfl_v1_product")
    lines.append(convergence_row(["split-federated SFL-V1, u_shaped, FedAvg, separate"], fedavg, out, reference, ref))
    lines.append(convergence_row([f"split-federated SFL-V1, u_shaped, FedAvg, product (lr {chosen})"], product, out,
                                 reference, ref))
    errors = [number(row["lora_truncation_error"]) for r in product for row in r.all_rows]
    errors = [e for e in errors if e is not None]
    if errors:
        lines.append("")
        lines.append(f"Truncation error per round: mean {statistics.mean(errors):.3f}, largest {max(errors):.3f}.")
    lines.append("")
    return lines


def across_section(out, seeds, runs, long_runs, reference):
    """Section 7 of run.sh: SFL-V1 with one learning-rate schedule across the rounds."""
    lines = ["## One schedule across the rounds", ""]
    lines.append("SFL-V1 (u_shaped), one round per epoch, `federation.lr_across_rounds: true`: round k's peak rate "
                 "is train.lr decayed by a cosine across federation.rounds to train.min_lr_ratio (0.1) of it at the "
                 "last round, as centralized's one schedule decays across its epochs (each round's own warmup and "
                 "cosine still run under it). The client learning rate tuned again on the validation set (3 epochs, "
                 "the schedule spanning them, seed 1); then every seed with at most 12 epochs (centralized's cap, "
                 "so the same schedule length) and at most "
                 f"{rounds_cap(os.path.join(out, 'seed%d' % seeds[0], 'sfl_v1_across_%d' % max(across_caps(out, seeds))))}"
                 ", the same rule to stop.")
    lines.append("")
    tuning, chosen = lr_tuning_table(out, "sfl_v1_across")
    lines += tuning + [""] + CONVERGENCE_HEADER
    ref = epoch_reference(out, seeds, runs)
    lines.append(convergence_row(["split-federated SFL-V1, u_shaped, FedAvg, a schedule per round (at most 24 "
                                  "epochs)"], long_runs.get("sfl_v1") or runs["sfl_v1"], out, reference, ref))
    for cap in across_caps(out, seeds):
        lines.append(convergence_row([f"split-federated SFL-V1, u_shaped, FedAvg, one schedule across at most {cap} "
                                      f"rounds (lr {chosen})"], found_runs(out, seeds, f"sfl_v1_across_{cap}"), out,
                                     reference, ref))
    both = found_runs(out, seeds, "sfl_v1_x4_across")
    if both:
        _, chosen_both = lr_tuning_table(out, "sfl_v1_x4_across")
        lines.append(convergence_row([f"split-federated SFL-V1, u_shaped, FedAvg, 4 rounds per epoch, one schedule "
                                      f"across at most {rounds_cap(both[0].dir)} rounds (lr {chosen_both})"], both,
                                     out, reference, ref))
    lines.append("")
    if both:
        tuning, _ = lr_tuning_table(out, "sfl_v1_x4_across")
        lines.append("The last row's tuning (4 rounds per epoch, 12 rounds, the schedule spanning them):")
        lines.append("")
        lines += tuning + [""]
    return lines


def across_caps(out, seeds):
    found = {int(os.path.basename(d).rsplit("_", 1)[1])
             for s in seeds for d in glob.glob(os.path.join(out, f"seed{s}", "sfl_v1_across_*"))}
    return sorted(found)


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
        found = client_tuning(out, method)
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
        ratio = "-" if method == "centralized" else ratio_cell(rs, reference)
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

    long_runs = {m: found_runs(out, seeds, m + "_long") for m in ("sfl_v1", "fedavg_nosplit")}
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
            lines.append(f"| {label} | {mean_std([r.final for r in rs])} | {ratio_cell(rs, reference)} | "
                         f"{statistics.mean(r.epochs for r in rs):.1f} ({sum(1 for r in rs if r.converged)}/{len(rs)}) | "
                         f"{statistics.mean(r.seconds for r in rs):.0f} s |")
        lines.append("")

    frequencies = frequency_methods(out)
    if frequencies:
        lines += frequency_section(out, seeds, runs, long_runs, frequencies, reference)
    if found_runs(out, seeds, "fedavgm"):
        lines += fedavgm_section(out, seeds, runs, long_runs, reference)
    if found_runs(out, seeds, "sfl_v1_product"):
        lines += product_section(out, seeds, runs, long_runs, reference)
    if found_runs(out, seeds, "sfl_v1_across_12"):
        lines += across_section(out, seeds, runs, long_runs, reference)

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
        best(*sys.argv[2:5])
    elif len(sys.argv) == 6 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit(__doc__)
