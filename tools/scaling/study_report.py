"""study_report.py — the scaling study's tables (CSV, markdown) and plots (PNG).

Every table is derived from the list of run results (one dict per
configuration, ok or not); every figure is a median over the timed steps with
[min, max] beside it. Runs that did not run appear in skipped.md only.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RUN_FIELDS = ["experiment", "name", "dataset_requested", "dataset_used", "status", "world", "oversubscribed",
              "micro", "accum", "global_batch", "overlap", "bucket_elems", "mpi_progress", "lr", "epochs", "step_s",
              "step_min_s", "step_max_s", "images_per_s", "images_per_s_per_rank", "data_ms", "upload_ms", "forward_ms",
              "backward_ms",
              "comm_exposed_ms", "comm_total_ms", "overlap_ratio", "optimizer_ms", "epoch_s", "test_acc",
              "time_to_target_s", "predicted_step_s", "predicted_error", "repeat_steps_ms", "steal_pct", "note", "error",
              "command"]


def fmt(x, spec=".1f", none="—"):
    return none if x is None or x == "" else format(x, spec)


def ms(x):
    return fmt(None if x is None else 1e3 * x, ".1f")


def step_cell(r):
    return f"{1e3 * r['step_s']:.1f} [{1e3 * r['step_min_s']:.1f}, {1e3 * r['step_max_s']:.1f}]"


def world_cell(r):
    return f"{r['world']}" + (" (oversubscribed)" if r["oversubscribed"] else "")


def repeats_cell(r):
    """Every repeat's median step in ms ("a / b"), the chosen one among them; "—" for a single run."""
    steps = r.get("repeat_steps_s")
    if not steps or len(steps) < 2:
        return "—"
    return " / ".join("failed" if s is None else f"{1e3 * s:.1f}" for s in steps)


def write_csv(path: Path, rows: list[dict], fields: list[str]):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def ok(results, experiment, **match):
    rows = [r for r in results if r["experiment"] == experiment and r["status"] == "ok"]
    for k, v in match.items():
        rows = [r for r in rows if r.get(k) == v]
    return rows


def comm_cells(r):
    return [fmt(r.get("comm_exposed_ms")), fmt(r.get("comm_total_ms")),
            fmt(None if r.get("overlap_ratio") is None else 100 * r["overlap_ratio"], ".0f") +
            ("%" if r.get("overlap_ratio") is not None else "")]


# --- experiments ---------------------------------------------------------------

def strong_tables(results, out: Path) -> str:
    text = ""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for req in sorted({r["dataset_requested"] for r in ok(results, "strong")}):
        rows = sorted(ok(results, "strong", dataset_requested=req), key=lambda r: r["world"])
        base = next((r for r in rows if r["world"] == 1), None)
        if not base:
            continue
        body = []
        for r in rows:
            r["speedup"] = r["images_per_s"] / base["images_per_s"]
            r["efficiency"] = r["speedup"] / r["world"]
            body.append([world_cell(r), r["micro"], r["global_batch"], step_cell(r), f"{r['images_per_s']:.1f}",
                         f"{r['speedup']:.2f}x", f"{100 * r['efficiency']:.0f}%", *comm_cells(r),
                         fmt(r.get("data_ms"), ".2f"), fmt(r.get("predicted_step_s") and 1e3 * r["predicted_step_s"])])
        text += f"\n**{rows[0]['dataset_used']}** — global batch {base['global_batch']}\n\n"
        text += md_table(["ranks", "micro", "global", "step ms median [min, max]", "images/s", "speed-up",
                          "efficiency", "exposed comm ms", "total comm ms", "overlap", "data wait ms",
                          "simulated step ms"], body)
        ws = [r["world"] for r in rows]
        label = req + (" shape (synthetic)" if rows[0]["dataset_used"] != req else "")
        line = axes[0].plot(ws, [r["speedup"] for r in rows], "o-", label=label)[0]
        axes[1].plot(ws, [100 * r["efficiency"] for r in rows], "o-", label=label, color=line.get_color())
        pred = [(r["world"], r["global_batch"] / r["predicted_step_s"] / base["images_per_s"])
                for r in rows if r.get("predicted_step_s")]
        if pred:
            pred = [(1, 1.0)] + pred
            axes[0].plot([p[0] for p in pred], [p[1] for p in pred], "x--", color=line.get_color(),
                         label=f"{req}: simulated")
    if text:
        mx = max(r["world"] for r in ok(results, "strong"))
        axes[0].plot([1, mx], [1, mx], "k:", label="ideal")
        axes[0].set(xlabel="ranks", ylabel="speed-up", title="Strong scaling (fixed global batch)")
        axes[1].set(xlabel="ranks", ylabel="efficiency %", title="Strong-scaling efficiency", ylim=(0, 110))
        axes[0].legend(fontsize=7)
        for a in axes:
            a.axvspan(max(1, _cores(results)) + 0.5, mx + 0.5, color="0.9")
        fig.text(0.5, 0.01, "shaded: ranks beyond the cores (oversubscribed)", ha="center", fontsize=8)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        fig.savefig(out / "strong.png", dpi=110)
    plt.close(fig)
    return text


def _cores(results):
    return max([r["world"] for r in results if r["status"] == "ok" and not r["oversubscribed"]] or [1])


def weak_table(results, out: Path) -> str:
    rows = sorted(ok(results, "weak"), key=lambda r: r["world"])
    base = next((r for r in rows if r["world"] == 1), None)
    if not base:
        return ""
    body = []
    for r in rows:
        r["efficiency"] = r["images_per_s_per_rank"] / base["images_per_s_per_rank"]
        body.append([world_cell(r), r["micro"], r["global_batch"], step_cell(r), f"{r['images_per_s_per_rank']:.1f}",
                     f"{100 * r['efficiency']:.0f}%", *comm_cells(r),
                     fmt(r.get("predicted_step_s") and 1e3 * r["predicted_step_s"])])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["world"] for r in rows], [100 * r["efficiency"] for r in rows], "o-")
    ax.set(xlabel="ranks", ylabel="efficiency %", title=f"Weak scaling, micro-batch {base['micro']} per rank",
           ylim=(0, 110))
    fig.tight_layout()
    fig.savefig(out / "weak.png", dpi=110)
    plt.close(fig)
    return md_table(["ranks", "micro", "global", "step ms median [min, max]", "images/s per rank", "efficiency",
                     "exposed comm ms", "total comm ms", "overlap", "simulated step ms"], body)


def batch_table(results, out: Path) -> str:
    rows = ok(results, "batch")
    if not rows:
        return ""
    worlds = sorted({r["world"] for r in rows})
    micros = sorted({r["micro"] for r in rows})
    by = {(r["world"], r["micro"]): r for r in rows}
    body = []
    for m in micros:
        line = [m]
        for w in worlds:
            r = by.get((w, m))
            line += [step_cell(r), f"{r['images_per_s']:.1f}"] if r else ["—", "—"]
        if len(worlds) > 1 and (worlds[0], m) in by and (worlds[-1], m) in by:
            a, b = by[(worlds[0], m)], by[(worlds[-1], m)]
            line.append(f"{b['images_per_s'] / a['images_per_s']:.2f}x")
            share = (b.get("comm_exposed_ms") or 0) / (1e3 * b["step_s"]) if b["step_s"] else 0
            line.append(f"{100 * share:.1f}%")
        body.append(line)
    header = ["micro-batch"]
    for w in worlds:
        header += [f"{w} rank(s): step ms [min, max]", f"{w} rank(s): images/s"]
    if len(worlds) > 1:
        header += [f"speed-up {worlds[0]}->{worlds[-1]}", f"exposed comm share at {worlds[-1]}"]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for w in worlds:
        rs = sorted([r for r in rows if r["world"] == w], key=lambda r: r["micro"])
        ax.plot([r["micro"] for r in rs], [r["images_per_s"] for r in rs], "o-", label=f"{w} rank(s)")
    ax.set(xscale="log", xlabel="micro-batch per rank", ylabel="images/s (all ranks)", title="Batch-size sweep")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "batch_sweep.png", dpi=110)
    plt.close(fig)
    return md_table(header, body) + ("\nTime to a target accuracy: not measured in these runs "
                                     "(each is a few steps long); see the accuracy runs below.\n")


def accum_table(results, out: Path) -> str:
    rows = sorted(ok(results, "accum"), key=lambda r: r["accum"])
    if not rows:
        return ""
    body = [[r["accum"], r["global_batch"], step_cell(r), f"{r['images_per_s']:.1f}",
             f"{1e3 * r['step_s'] / r['accum']:.1f}", *comm_cells(r),
             fmt(r.get("predicted_step_s") and 1e3 * r["predicted_step_s"])] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["accum"] for r in rows], [r["images_per_s"] for r in rows], "o-")
    ax.set(xscale="log", xlabel="gradient accumulation steps", ylabel="images/s",
           title=f"Accumulation at {rows[0]['world']} ranks, micro-batch {rows[0]['micro']}")
    fig.tight_layout()
    fig.savefig(out / "accumulation.png", dpi=110)
    plt.close(fig)
    return md_table(["accumulation", "global", "step ms [min, max]", "images/s", "ms per micro-step",
                     "exposed comm ms", "total comm ms", "overlap", "simulated step ms"], body)


def comm_table(results, out: Path) -> str:
    rows = sorted(ok(results, "comm"),
                  key=lambda r: (not r["overlap"], r["bucket_elems"], r.get("mpi_progress", "thread") != "thread"))
    if not rows:
        return ""
    def sim_overlap(r):
        c, e = r.get("predicted_comm_s"), r.get("predicted_exposed_s")
        return f"{100 * max(0.0, 1 - e / c):.0f}%" if c else "—"

    body = [["on" if r["overlap"] else "off", f"{r['bucket_elems']:,} ({r['bucket_elems'] * 4 / 2**20:.2f} MiB)",
             r.get("mpi_progress", "thread"), step_cell(r), *comm_cells(r),
             fmt(r.get("predicted_step_s") and 1e3 * r["predicted_step_s"]),
             fmt(r.get("predicted_comm_s") and 1e3 * r["predicted_comm_s"]),
             fmt(None if r.get("predicted_exposed_s") is None else 1e3 * r["predicted_exposed_s"]), sim_overlap(r)]
            for r in rows]
    fig, ax = plt.subplots(figsize=(8.5, 4))
    labels = [f"{'on' if r['overlap'] else 'off'}\n{r['bucket_elems'] * 4 / 2**20:.2g} MiB"
              f"\n{r.get('mpi_progress', 'thread')}" for r in rows]
    x = range(len(rows))
    ax.bar([i - 0.27 for i in x], [r.get("comm_exposed_ms") or 0 for r in rows], 0.27, label="exposed comm, measured")
    ax.bar([i for i in x], [1e3 * (r.get("predicted_comm_s") or 0) for r in rows], 0.27,
           label="total comm, simulated")
    ax.bar([i + 0.27 for i in x], [1e3 * (r.get("predicted_exposed_s") or 0) for r in rows], 0.27,
           label="exposed comm, simulated")
    ax.plot(list(x), [1e3 * r["step_s"] for r in rows], "ko", label="step")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set(ylabel="ms per step",
           title=f"Communication at {rows[0]['world']} ranks: overlap_comm x bucket size x MPI progress")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "comm.png", dpi=110)
    plt.close(fig)
    return md_table(["overlap_comm", "reduce_bucket_size (elements)", "MPI progress", "step ms [min, max]",
                     "exposed comm ms",
                     "total comm ms", "overlap", "simulated step ms", "simulated total comm ms",
                     "simulated exposed ms", "simulated overlap"], body) + (
        "\nvit_train's metrics carry the exposed communication (the wait after backward); where they carry no "
        "total, the total and the overlap ratio come from the simulator's replay of the same configuration.\n")


def input_table(results, out: Path) -> str:
    timed = ("strong", "weak", "batch", "accum", "comm")
    rows = [r for r in results if r["status"] == "ok" and r["experiment"] in timed]
    if not rows:
        return ""
    def input_ms(r):  # waiting for the batch, then copying it to the device
        return (r.get("data_ms") or 0.0) + (r.get("upload_ms") or 0.0)

    def share(r):
        return 100 * input_ms(r) / (1e3 * r["step_s"]) if r["step_s"] else 0.0

    body = [[r["name"], world_cell(r), r["micro"], fmt(r.get("data_ms"), ".2f"), fmt(r.get("upload_ms"), ".3f"),
             f"{share(r):.2f}%" if r["step_s"] else "—", step_cell(r)] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(range(len(rows)), [share(r) for r in rows])
    ax.set_xticks(range(len(rows)), [r["name"] for r in rows], rotation=90, fontsize=6)
    ax.set(ylabel="data wait + upload, % of step", title="Input path: waiting for the batch and copying it in")
    fig.tight_layout()
    fig.savefig(out / "input.png", dpi=110)
    plt.close(fig)
    return md_table(["run", "ranks", "micro", "data wait ms (median)", "upload ms (median)", "share of step",
                     "step ms [min, max]"], body) + (
        "\n*upload*: copying the batch into the device's input buffers (host-to-device on a GPU; on CPU ranks a "
        "copy within host memory).\n")


def accuracy_table(results, out: Path, target: float) -> str:
    rows = ok(results, "accuracy")
    if not rows:
        return ""
    body = [[r["name"], r["global_batch"], f"{r['lr']:g}", r["epochs"], fmt(r.get("epoch_s"), ".1f"),
             fmt(r.get("test_acc"), ".3f"), fmt(r.get("time_to_target_s"), ".1f", "not reached"), r["note"]]
            for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for r in rows:
        ev = [(t, a) for t, _, a in r.get("evals", []) if t is not None]
        if ev:
            ax.plot([t for t, _ in ev], [a for _, a in ev], "o-", label=f"{r['name']} (lr {r['lr']:g})")
    ax.axhline(target, color="k", ls=":", lw=1)
    ax.set(xlabel="training time s", ylabel="test accuracy", title="Accuracy beside speed")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=110)
    plt.close(fig)
    return md_table(["run", "global batch", "lr", "epochs", "epoch s", "final test acc", f"time to {target:g} s",
                     "note"], body)


def sim_table(results, out: Path, tolerance: float) -> str:
    rows = [r for r in results if r["status"] == "ok" and r.get("predicted_step_s") and r["world"] > 1]
    if not rows:
        return ""
    body = []
    for r in rows:
        err = r["predicted_error"]
        bracket = r.get("bracket_diff")
        body.append([r["name"], world_cell(r), r["micro"], r["accum"], "on" if r["overlap"] else "off",
                     f"{1e3 * r['step_s']:.1f}", repeats_cell(r), fmt(r.get("steal_pct"), ".0f"),
                     f"{1e3 * r['predicted_step_s']:.1f}",
                     f"{100 * err:+.1f}%",
                     "yes" if abs(err) <= tolerance else "**no**",
                     "—" if bracket is None else f"{100 * bracket:+.0f}%", r.get("prediction_note", "")])
    within = sum(1 for r in rows if abs(r["predicted_error"]) <= tolerance)
    brackets = sorted(abs(r["bracket_diff"]) for r in rows if r.get("bracket_diff") is not None)
    errors = sorted(abs(r["predicted_error"]) for r in rows)
    repeat = (f" The profile measured just before and just after each run differs by a median of "
              f"{100 * brackets[len(brackets) // 2]:.0f}% (max {100 * brackets[-1]:.0f}%): that is how repeatable one "
              f"measurement is on this machine while it runs other work, and it bounds what any prediction can "
              f"achieve here. Median prediction error: {100 * errors[len(errors) // 2]:.0f}%."
              if brackets else "")
    steals = sorted(r["steal_pct"] for r in rows if r.get("steal_pct") is not None)
    if steals:
        repeat += (f" *steal %*: the share of the machine's CPU time its hypervisor gave to other guests during "
                   f"the chosen run (/proc/stat), median {steals[len(steals) // 2]:.0f}%, max {steals[-1]:.0f}%.")
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    meas = [1e3 * r["step_s"] for r in rows]
    pred = [1e3 * r["predicted_step_s"] for r in rows]
    lim = (0, 1.1 * max(meas + pred))
    ax.plot(lim, lim, "k-", lw=1)
    ax.fill_between(lim, [v * (1 - tolerance) for v in lim], [v * (1 + tolerance) for v in lim], color="0.9",
                    label=f"±{100 * tolerance:.0f}%")
    for over in (False, True):
        pts = [(m, p) for m, p, r in zip(meas, pred, rows) if r["oversubscribed"] == over]
        if pts:
            ax.plot([m for m, _ in pts], [p for _, p in pts], "x" if over else "o",
                    label="oversubscribed" if over else "ranks <= cores")
    ax.set(xlim=lim, ylim=lim, xlabel="measured step ms", ylabel="simulated step ms",
           title="Simulator vs measurement")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sim_validation.png", dpi=110)
    plt.close(fig)
    return (md_table(["run", "ranks", "micro", "accum", "overlap", "measured step ms", "repeats' medians ms",
                      "steal %", "simulated step ms", "error",
                      f"within {100 * tolerance:.0f}%", "profile after vs before", "profile used"], body) +
            f"\n{within} of {len(rows)} within ±{100 * tolerance:.0f}%.{repeat}\n")


def contention_table(net_json: Path) -> str:
    """What one collective (all-reduce; ZeRO's reduce-scatter and all-gather where measured)
    costs here while the same core computes backward (vit_contended_bench's curves in
    network.json), beside its idle cost (vit_allreduce_bench's curve of the same collective)."""
    if not net_json.exists():
        return ""
    model = json.loads(net_json.read_text())

    def kind(c):
        return c.get("collective", "allreduce")

    curves = sorted(model.get("contended", []), key=lambda c: (c["world"], c["progress"], kind(c) != "allreduce",
                                                               kind(c), c.get("gap_us", 0)))
    idle = {(c["world"], kind(c)): dict((p[0], p[1]) for p in c["points"]) for c in model.get("measured", [])}
    rows = []
    for c in curves:
        for b, wall, lost in c["points"]:
            alone = idle.get((c["world"], kind(c)), {}).get(b)
            rows.append([c["world"], c["progress"], kind(c), f"{c.get('gap_us', 0):,.0f}", f"{int(b):,}",
                         fmt(alone and 1e6 * alone, ".0f"), f"{1e6 * wall:.0f}", f"{1e6 * lost:.0f}",
                         f"{100 * lost / wall:.0f}%" if wall else "—"])
    if not rows:
        return ""
    launches = sorted({c.get("launches", 1) for c in curves})
    return md_table(["ranks", "MPI progress", "collective", "gap us", "bytes", "idle us", "while computing us",
                     "compute lost us", "lost / while computing"], rows) + (
        "\nMedians over each launch's timed steps of 16 buckets, then the median over "
        f"{' or '.join(str(n) for n in launches)} launches. *gap*: the compute before each launch. *bytes*: the "
        "full buffer (a reduce-scatter's input, an all-gather's output). *idle*: vit_allreduce_bench on idle "
        "cores, the same collective. The simulator replays a collective that overlaps compute at these rates "
        "(collective at idle / contended speed, compute at 1 − lost / contended), interpolated in the gap for "
        "the compute before it.\n")


def paper_runs_table(results, out: Path) -> str:
    """The --paper grid: average epoch time is the figure, accuracy beside it."""
    rows = [r for r in results if r["experiment"].startswith("paper-") and r["status"] == "ok"]
    if not rows:
        return ""
    text = ""
    for exp in ("paper-strong", "paper-strong-lr", "paper-weak", "paper-batch", "paper-accum"):
        rs = sorted([r for r in rows if r["experiment"] == exp], key=lambda r: (r["dataset_requested"], r["world"],
                                                                                r["micro"], r["accum"]))
        if not rs:
            continue
        base_exp = "paper-weak" if exp == "paper-weak" else "paper-strong"  # 1 rank, micro-batch 64
        base = {r["dataset_requested"]: r for r in rows
                if r["experiment"] == base_exp and r["world"] == 1 and r["micro"] == 64}
        body = []
        for r in rs:
            b = base.get(r["dataset_requested"])
            rel = "—"
            if b and b.get("epoch_s") and r.get("epoch_s"):
                rel = (f"{100 * b['epoch_s'] / r['epoch_s']:.0f}% efficiency" if exp == "paper-weak"
                       else f"{b['epoch_s'] / r['epoch_s']:.2f}x")
            body.append([r["dataset_used"], world_cell(r), r["micro"], r["accum"], f"{r['lr']:g}",
                         fmt(r.get("epoch_s"), ".1f"), rel, fmt(r.get("test_acc"), ".3f"), r.get("note", "")])
        text += f"\n**{exp}**\n\n" + md_table(["dataset", "ranks", "micro", "accum", "lr", "mean epoch s",
                                               "vs 1 rank", "test acc", "note"], body)
    return text


def paper_validation_plot(out: Path) -> bool:
    """Published vs predicted for the paper's figures (paper_validation.csv from vit_scaling_sim)."""
    path = out / "paper_validation.csv"
    if not path.exists():
        return False
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r["unit"] != "s"]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    labels = [f"{r['figure']}\n({r['setting']})" for r in rows]
    pub = [float(r["published"]) / (100 if r["unit"] == "%" else 1) for r in rows]
    pred = [float(r["predicted"]) / (100 if r["unit"] == "%" else 1) for r in rows]
    ideal = []
    for r in rows:  # normalise to the ideal so speed-ups and efficiencies share an axis
        n = 32 if "32" in r["figure"] else 8
        ideal.append(1.0 if r["unit"] == "%" else n)
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [p / i for p, i in zip(pub, ideal)], 0.4, label="published")
    ax.barh([i - 0.2 for i in y], [p / i for p, i in zip(pred, ideal)], 0.4, label="simulated")
    for i, r in zip(y, rows):
        ax.text(1.01, i, f"{float(r['error_pct']):+.1f}%  ({r['role'][:28]})", va="center", fontsize=6)
    ax.set_yticks(list(y), labels, fontsize=6)
    ax.set(xlim=(0.5, 1.35), xlabel="fraction of ideal (speed-up / GPUs, or efficiency)",
           title="The paper's DeepSpeed figures: published vs simulated")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "paper_validation.png", dpi=110)
    plt.close(fig)
    return True
