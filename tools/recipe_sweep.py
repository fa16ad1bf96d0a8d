#!/usr/bin/env python3
"""recipe_sweep.py — choose the default Fashion-MNIST recipe without touching the test split.

Runs vit_train once per recipe with `--holdout N` (evaluate on the train
split's last N images, train on the rest; the test split is never read) and
writes one markdown row per recipe: holdout accuracy after each epoch, the
best, the training wall time (evaluations included) and the time to each
accuracy asked for. The recipes are vit_train flags, so a row says exactly
what ran. Only the recipe that wins on the holdout is then run once on the
test split (plain `tools/run.sh` once it is the default).

  tools/recipe_sweep.py --vit-train build/run/train/vit_train \\
      --recipe base="" --recipe p4="--patch-size 4 --dim 64" --out docs/results/fashion_mnist_sweep.md

Timing is only meaningful on an idle machine: the script prints the load
average before each run and records it in the table.
"""
import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def read_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def time_to(evals, target):
    """Seconds (the eval record's training clock) at which accuracy first reached target."""
    for e in evals:
        if e["test_acc"] >= target:
            return e["elapsed_s"]
    return None


def run_recipe(vit_train, name, flags, holdout, targets, workdir):
    metrics = os.path.join(workdir, f"{name}.jsonl")
    cmd = [vit_train, "--holdout", str(holdout), "--metrics-out", metrics] + shlex.split(flags)
    load = os.getloadavg()[0]
    print(f"recipe_sweep: {name}: load {load:.2f}: {' '.join(cmd)}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
        raise SystemExit(f"recipe_sweep: {name} failed with status {proc.returncode}")
    records = read_records(metrics)
    evals = [r for r in records if r["event"] == "eval"]  # elapsed_s: the clock of the final record's time_to_acc
    final = next(r for r in records if r["event"] == "final")
    if final.get("split") != "holdout":
        raise SystemExit(f"recipe_sweep: {name} did not evaluate on the holdout")
    row = {
        "name": name,
        "flags": flags,
        "load": load,
        "epochs": [e["test_acc"] for e in evals],
        "best": final["best_test_acc"],
        "final": final["test_acc"],
        "train_wall_s": final["wall_s"],
        "process_wall_s": wall,
        "time_to": {t: time_to(evals, t) for t in targets},
    }
    # --ema-decay: test_acc is the weight average's; the live weights' of the
    # same run come beside it (one run answers whether the average pays).
    if evals and all("live_test_acc" in e for e in evals):
        row["live_epochs"] = [e["live_test_acc"] for e in evals]
    return row


def markdown(rows, holdout, targets, machine):
    out = [f"Holdout: the last {holdout} images of Fashion-MNIST's train split (the test split is not read). "
           f"Machine: `{machine}`, {os.cpu_count()} logical CPUs. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
           "",
           "| recipe | flags | load | holdout acc by epoch | best | train wall s | "
           + " | ".join(f"s to {100 * t:.1f}%" for t in targets) + " |",
           "| --- | --- | --- | --- | --- | --- | " + " | ".join("---" for _ in targets) + " |"]
    for r in rows:
        by_epoch = " ".join(f"{100 * a:.2f}" for a in r["epochs"])
        if r.get("live_epochs"):
            by_epoch = "EMA: " + by_epoch + "; live: " + " ".join(f"{100 * a:.2f}" for a in r["live_epochs"])
        tt = " | ".join("—" if r["time_to"].get(t) is None else f"{r['time_to'][t]:.0f}" for t in targets)
        out.append(f"| {r['name']} | `{r['flags'] or '(defaults)'}` | {r['load']:.2f} | {by_epoch} | "
                   f"{100 * r['best']:.2f} | {r['train_wall_s']:.0f} | {tt} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vit-train", help="the vit_train binary (or vit_torch_train: the same flags and records)")
    ap.add_argument("--recipe", action="append", default=[], metavar="NAME=FLAGS",
                    help="a recipe: a name and the vit_train flags it adds to the defaults")
    ap.add_argument("--rows", action="append", default=[], metavar="FILE.json",
                    help="rows an earlier sweep wrote with --json, put in the table before the new ones "
                         "(sweeps run one recipe each, side by side, are joined this way)")
    ap.add_argument("--holdout", type=int, default=5000)
    ap.add_argument("--target", type=float, action="append", help="accuracies to time (default 0.885 and 0.905)")
    ap.add_argument("--out", help="markdown file to write (default: print)")
    ap.add_argument("--json", help="also write the rows as JSON")
    args = ap.parse_args()
    targets = args.target or [0.885, 0.905]
    if not args.recipe and not args.rows:
        raise SystemExit("recipe_sweep: nothing to do: give --recipe (and --vit-train) or --rows")
    if args.recipe and not args.vit_train:
        raise SystemExit("recipe_sweep: --recipe needs --vit-train")
    rows = []
    for path in args.rows:
        with open(path) as f:
            for row in json.load(f):
                # JSON keys are strings: the targets' times come back keyed by their value.
                row["time_to"] = {float(t): v for t, v in row["time_to"].items()}
                rows.append(row)
    with tempfile.TemporaryDirectory(prefix="recipe_sweep_") as work:
        for spec in args.recipe:
            name, _, flags = spec.partition("=")
            if not name:
                raise SystemExit(f"recipe_sweep: --recipe needs NAME=FLAGS, got {spec!r}")
            rows.append(run_recipe(args.vit_train, name, flags, args.holdout, targets, work))
    text = markdown(rows, args.holdout, targets, cpu_name())
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
