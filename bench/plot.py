#!/usr/bin/python3
"""Draw bench/run.sh's figures with matplotlib (Debian's python3-matplotlib).

    plot.py DATA_DIR OUT_DIR "CAPTION"

DATA_DIR holds what run.sh wrote: start-VARIANT-RT.txt (measure lines),
scaling.tsv, many.tsv, worker-size.tsv. Each figure is written only when
its data is there. CAPTION (machine, kernel, load) is printed on every
figure, so a plot never travels without the conditions it was made in.
"""
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

data, out, caption = sys.argv[1], sys.argv[2], sys.argv[3]
ORDER = ["berth", "berth-before", "runc", "crun", "youki", "floor"]
plt.rcParams["svg.hashsalt"] = "berth-bench"  # stable ids: smaller diffs


def field(path, key):
    vals = []
    with open(path) as f:
        for line in f:
            m = re.search(r"\b%s=(\d+)" % key, line)
            if m:
                vals.append(int(m.group(1)) / 1000.0)
    return vals


def finish(fig, name):
    fig.text(0.01, 0.005, caption, fontsize=7, color="#555555", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(os.path.join(out, name))
    plt.close(fig)


def start():
    variants = [("plain", "no seccomp"), ("seccomp", "Docker's seccomp profile")]
    have = [v for v in variants if os.path.exists(os.path.join(data, "start-%s-floor.txt" % v[0]))]
    if not have:
        return
    fig, axes = plt.subplots(len(have), 2, figsize=(10, 3.6 * len(have)), squeeze=False)
    for row, (variant, title) in enumerate(have):
        rts = [r for r in ORDER if os.path.exists(os.path.join(data, "start-%s-%s.txt" % (variant, r)))]
        for col, (key, label) in enumerate([("cpu_us", "CPU ms"), ("wall_us", "wall ms")]):
            ax = axes[row][col]
            vals = [field(os.path.join(data, "start-%s-%s.txt" % (variant, r)), key) for r in rts]
            ax.boxplot(vals, labels=rts, showfliers=True)
            ax.set_title("run /bin/true, %s: %s" % (title, label))
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            ax.grid(axis="y", alpha=0.3)
    finish(fig, "start.svg")


def scaling():
    path = os.path.join(data, "scaling.tsv")
    if not os.path.exists(path):
        return
    rows = [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, kind, xlabel in [(axes[0], "mounts", "extra mounts"), (axes[1], "rules", "seccomp rules")]:
        for rt in ORDER:
            pts = [(int(r[1]), float(r[3]) / 1000) for r in rows if r[0] == kind and r[2] == rt and r[3] != "fail"]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=rt)
            fails = [int(r[1]) for r in rows if r[0] == kind and r[2] == rt and r[3] == "fail"]
            for x in fails:
                ax.annotate("%s fails" % rt, (x, 0), fontsize=7, rotation=90, va="bottom")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("start CPU ms (median)")
        ax.set_title("run /bin/true vs %s" % xlabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    finish(fig, "scaling.svg")


def many():
    path = os.path.join(data, "many.tsv")
    if not os.path.exists(path):
        return
    rows = [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]
    rts = [r[0] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].bar(rts, [int(r[2]) / 1024 for r in rows])
    axes[0].set_ylabel("MB")
    axes[0].set_title("memory cgroups of 100 created containers")
    width = 0.25
    for i, (col, label) in enumerate([(4, "create/s"), (5, "start/s"), (6, "delete/s")]):
        axes[1].bar([x + (i - 1) * width for x in range(len(rts))], [float(r[col]) for r in rows], width, label=label)
    axes[1].set_xticks(range(len(rts)))
    axes[1].set_xticklabels(rts)
    axes[1].set_ylabel("containers per second")
    axes[1].set_title("throughput, one command per container")
    axes[1].legend()
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    finish(fig, "many.svg")


def worker():
    path = os.path.join(data, "worker-size.tsv")
    if not os.path.exists(path):
        return
    rows = [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for mode in sorted(set(r[0] for r in rows)):
        pts = sorted((float(r[1]), float(r[2]) / 1000) for r in rows if r[0] == mode and r[2] != "fail")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=mode)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("image size MB")
    ax.set_ylabel("task wall ms (median)")
    ax.set_title("berth-worker: a `true` task vs image size")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    finish(fig, "worker.svg")


os.makedirs(out, exist_ok=True)
for fn in (start, scaling, many, worker):
    try:
        fn()
    except Exception as e:  # one broken figure must not lose the others
        print("plot.py: %s: %s" % (fn.__name__, e), file=sys.stderr)
