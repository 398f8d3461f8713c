#!/usr/bin/env python3
"""Compares benchmark figures with a baseline and prints what got worse.

    benches/compare.py BASELINE CURRENT [--threshold PCT]
    benches/compare.py criterion [CRITERION_DIR] [OUT.json]

BASELINE and CURRENT are directories of figure files (what the benchmark
scripts write to target/bench-figures/) or single files. A figure is
(bench, case, metric, value). A metric whose name ends in `_per_s` is better
higher; every other one is better lower. Figures present on one side only are
listed, not judged. Exits 1 when a figure is worse than its baseline by more
than the threshold (10 % by default), 0 otherwise.

The `criterion` form collects the medians criterion left in
target/criterion/<group>/<bench>/new/estimates.json into a figure file
(target/bench-figures/criterion.json by default), so that criterion
benchmarks are compared like the others.

Measurements on a shared, noisy machine move by several percent between
runs: compare runs made on the same machine, and run a suspect benchmark
again before believing it.
"""

import json
import os
import sys


def load(path):
    """Figures by (bench, case, metric), from a file or a directory."""
    files = []
    if os.path.isdir(path):
        files = [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".json")]
    elif os.path.isfile(path):
        files = [path]
    else:
        sys.exit(f"compare.py: {path} is neither a figure file nor a directory of them")
    figures = {}
    for name in files:
        try:
            with open(name) as f:
                doc = json.load(f)
            for figure in doc["figures"]:
                key = (doc["bench"], figure["case"], figure["metric"])
                figures[key] = float(figure["value"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.exit(f"compare.py: {name} is not a figure file ({e})")
    return figures


def change(metric, baseline, current):
    """How much worse `current` is than `baseline`, as a fraction (negative: better)."""
    if baseline == 0:
        return 0.0 if current == 0 else float("inf")
    if metric.endswith("_per_s"):
        return (baseline - current) / baseline
    return (current - baseline) / baseline


def compare(baseline, current, threshold):
    worse, better, unchanged = [], [], 0
    for key in sorted(set(baseline) & set(current)):
        delta = change(key[2], baseline[key], current[key])
        if delta > threshold:
            worse.append((key, baseline[key], current[key], delta))
        elif delta < -threshold:
            better.append((key, baseline[key], current[key], delta))
        else:
            unchanged += 1
    return worse, better, unchanged


def show(title, rows):
    if not rows:
        return
    print(title)
    for (bench, case, metric), old, new, delta in rows:
        word = "worse" if delta > 0 else "better"
        print(f"  {bench} {case} {metric}: {old:g} -> {new:g} ({abs(delta) * 100:.1f} % {word})")


def collect_criterion(root, out):
    figures = []
    for group in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for dirpath, _, files in os.walk(os.path.join(root, group)):
            if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
                continue
            case = os.path.relpath(os.path.dirname(dirpath), root)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                median_ns = json.load(f)["median"]["point_estimate"]
            figures.append({"case": case, "metric": "seconds", "value": median_ns / 1e9})
    if not figures:
        sys.exit(f"compare.py: no criterion estimates under {root}; run cargo bench first")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump({"bench": "criterion", "figures": figures}, f, indent=1)
        f.write("\n")
    print(f"{len(figures)} criterion medians in {out}")


def main(args):
    if args and args[0] == "criterion":
        root = args[1] if len(args) > 1 else "target/criterion"
        out = args[2] if len(args) > 2 else "target/bench-figures/criterion.json"
        collect_criterion(root, out)
        return 0
    threshold = 0.10
    if "--threshold" in args:
        at = args.index("--threshold")
        try:
            threshold = float(args[at + 1]) / 100
        except (IndexError, ValueError):
            sys.exit("compare.py: --threshold takes a percentage, such as 10")
        del args[at:at + 2]
    if len(args) != 2:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    baseline, current = load(args[0]), load(args[1])
    worse, better, unchanged = compare(baseline, current, threshold)
    show(f"worse by more than {threshold * 100:g} %:", worse)
    show(f"better by more than {threshold * 100:g} %:", better)
    only = sorted(set(baseline) ^ set(current))
    if only:
        print("on one side only (not judged):")
        for bench, case, metric in only:
            side = "baseline" if (bench, case, metric) in baseline else "current"
            print(f"  {bench} {case} {metric} ({side})")
    print(f"{len(worse)} worse, {len(better)} better, {unchanged} within {threshold * 100:g} %")
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
