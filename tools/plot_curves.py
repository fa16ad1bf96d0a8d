#!/usr/bin/env python3
"""plot_curves.py — a vit_train metrics.jsonl as curves.png, or a vit_eval
report as a confusion-matrix PNG (matplotlib, Agg backend: no display needed).

    tools/plot_curves.py runs/main/metrics.jsonl [-o runs/main/curves.png]
    tools/plot_curves.py --confusion runs/main/model.eval.json [-o confusion.png]

curves.png has four panels: training loss per logged step (with the test loss
per evaluation on the same axes), learning rate per step, test accuracy per
evaluation (x: epoch), and training throughput (images/s) per logged step. A
resumed run appends to the same file and may log a step twice: the last
record of a step wins. Errors are one line naming the file; exit 1. Without
matplotlib: exit 3 and a line saying how to install it.
"""
import argparse
import json
import os
import sys
from pathlib import Path

sys.dont_write_bytecode = True
PROG = "plot_curves"
NO_MATPLOTLIB = 3


def fail(message):
    sys.exit(f"{PROG}: error: {message}")


def import_pyplot():
    try:
        import matplotlib
    except ImportError:
        # A python3 first on PATH (pyenv, a venv) may lack the system's python3-matplotlib.
        system = Path("/usr/bin/python3")
        if system.exists() and Path(sys.executable).resolve() != system.resolve():
            os.execv(str(system), [str(system), str(Path(__file__).resolve()), *sys.argv[1:]])
        print(f"{PROG}: matplotlib is not installed (apt-get install python3-matplotlib): no plot written",
              file=sys.stderr)
        sys.exit(NO_MATPLOTLIB)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def read_metrics(path):
    """(train, evals): step -> record of the last "train" record of each step; evaluations in order."""
    train, evals = {}, {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            event = record["event"]
            if event == "train":
                train[int(record["step"])] = record
            elif event == "eval":
                evals[int(record["step"])] = record
        except (ValueError, KeyError, TypeError) as e:
            fail(f"{path}:{number}: not a vit_train metrics record ({type(e).__name__}: {e})")
    if not train and not evals:
        fail(f"{path}: no train or eval records")
    return [train[s] for s in sorted(train)], [evals[s] for s in sorted(evals)]


def plot_curves(metrics, out):
    train, evals = read_metrics(metrics)
    plt = import_pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    steps = [r["step"] for r in train]
    ax = axes[0][0]
    ax.plot(steps, [r["loss"] for r in train], label="train loss (per step)", lw=1)
    if evals:
        ax.plot([r["step"] for r in evals], [r["test_loss"] for r in evals], "o-", label="test loss (per epoch)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.legend()
    ax = axes[0][1]
    ax.plot(steps, [r["lr"] for r in train], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax = axes[1][0]
    if evals:
        ax.plot([r["epoch"] for r in evals], [r["test_acc"] for r in evals], "o-")
        best = max(evals, key=lambda r: r["test_acc"])
        ax.set_title(f"test accuracy (last {evals[-1]['test_acc']:.4f}, best {best['test_acc']:.4f})")
    else:
        ax.set_title("test accuracy (no evaluation yet)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax = axes[1][1]
    ax.plot(steps, [r.get("images_per_s", 0) for r in train], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("images / s")
    ax.set_title("training throughput")
    fig.suptitle(str(metrics))
    fig.tight_layout()
    save(fig, out)


def plot_confusion(report, out):
    try:
        data = json.loads(Path(report).read_text())
        names, matrix = data["class_names"], data["confusion"]
        acc = data["test_acc"]
    except OSError as e:
        fail(f"{report}: {e.strerror}")
    except (ValueError, KeyError, TypeError) as e:
        fail(f"{report}: not a vit_eval report ({type(e).__name__}: {e})")
    plt = import_pyplot()
    k = len(names)
    side = max(5.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    rows = [[v / max(sum(row), 1) for v in row] for row in matrix]  # each true class's share
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        ax.set_xticks(range(k), names, rotation=60, ha="right")
        ax.set_yticks(range(k), names)
        for t in range(k):
            for p in range(k):
                if matrix[t][p]:
                    ax.text(p, t, str(matrix[t][p]), ha="center", va="center", fontsize=7,
                            color="white" if rows[t][p] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix (test accuracy {acc:.4f})")
    fig.tight_layout()
    save(fig, out)


def save(fig, out):
    try:
        fig.savefig(out, dpi=110)
    except OSError as e:
        fail(f"{out}: {e.strerror}")
    print(f"{PROG}: wrote {out}")


def main():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="metrics.jsonl (or, with --confusion, a vit_eval JSON report)")
    p.add_argument("-o", "--out", help="PNG to write (default: curves.png / confusion.png beside the input)")
    p.add_argument("--confusion", action="store_true", help="plot a vit_eval report's confusion matrix")
    a = p.parse_args()
    default = "confusion.png" if a.confusion else "curves.png"
    out = a.out or str(Path(a.input).with_name(default))
    (plot_confusion if a.confusion else plot_curves)(a.input, out)


if __name__ == "__main__":
    main()
