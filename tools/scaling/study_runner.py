"""study_runner.py — runs one configuration of the scaling study and reads its metrics.

A configuration is one `mpirun -np N vit_train ...` launch. It runs a fixed
number of warm-up and timed optimizer steps (or whole epochs for accuracy and
paper runs), logs every step with the wall-clock breakdown, and is summarised
from its JSONL metrics: the median step time over the timed steps with min and
max, the phase medians (data wait, upload of the batch to the device, forward,
backward, exposed communication, optimizer) and, where parallel/ reports them, the total communication time and
overlap ratio.

A configuration that cannot run is not launched: check() returns the reason,
which the study records in skipped.md, and the study goes on.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Config:
    experiment: str            # strong, weak, batch, accum, comm, accuracy, paper-*
    name: str                  # unique, used for file names
    dataset: str               # requested: cifar10, cifar100, ...
    world: int
    micro: int
    accum: int = 1
    overlap: bool = True
    bucket_elems: int = 25_000_000
    lr: float | None = None
    warmup_steps: int | None = None
    warmup_epochs: float | None = None
    epochs: int | None = None      # None: warm-up + timed steps
    train_subset: int = 0
    mpi_progress: str = "thread"   # CPU ranks: VITSCALE_MPI_PROGRESS (parallel/mpi_communicator.h)
    model_flags: tuple | None = None  # the model, where not the study's (Runner.model_flags)
    zero_stage: int = 0            # zero_optimization.stage
    checkpointing: bool = False    # activation_checkpointing.enabled
    note: str = ""

    @property
    def global_batch(self) -> int:
        return self.world * self.micro * self.accum


@dataclass
class Machine:
    device: str                # cpu or cuda
    cores: int
    gpus: int
    max_ranks: int             # without oversubscription
    oversubscribe_to: int      # CPU: ranks allowed in all (marked oversubscribed beyond max_ranks)
    cpu_model: str = ""

    def allowed(self, world: int) -> int:
        return self.oversubscribe_to if self.device == "cpu" else self.max_ranks

    def oversubscribed(self, world: int) -> bool:
        return self.device == "cpu" and world > self.max_ranks

    def threads(self, world: int) -> int:
        # One core per rank at every world size (the MPI convention: speed-up
        # is over cores); ranks beyond the cores share them.
        return 1


def detect_machine(oversubscribe_to: int | None, force_cpu: bool) -> Machine:
    cores = os.cpu_count() or 1
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    gpus = 0
    if not force_cpu:
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
            gpus = sum(1 for l in out.stdout.splitlines() if l.startswith("GPU "))
        except (OSError, subprocess.TimeoutExpired):
            gpus = 0
    if gpus > 0:
        return Machine("cuda", cores, gpus, gpus, gpus, model)
    return Machine("cpu", cores, 0, cores, oversubscribe_to or 2 * cores, model)


@dataclass
class Summary:
    status: str = "ok"             # ok, failed, not-data-parallel
    error: str = ""
    steps: int = 0
    step_s: float = 0.0            # median over timed steps (wall)
    step_min_s: float = 0.0
    step_max_s: float = 0.0
    phases_ms: dict = field(default_factory=dict)   # medians: data, forward, backward, comm, optimizer
    comm_total_ms: float | None = None              # parallel/'s reduce time, when reported
    comm_exposed_ms: float | None = None
    overlap_ratio: float | None = None
    images_per_s: float = 0.0      # global, from the median step
    epoch_s: float | None = None   # mean epoch time (epoch runs)
    test_acc: float | None = None
    test_loss: float | None = None
    wall_s: float = 0.0
    world_reported: int | None = None
    steal_pct: float | None = None  # share of the machine's CPU time the hypervisor took during the run
    walls: list = field(default_factory=list)      # the timed steps' wall times, s
    rss_max_mib: float | None = None                # the largest rank's peak RSS (ZeRO axis: /usr/bin/time)
    plan_bytes: dict = field(default_factory=dict)  # rank 0's printed memory plan, row -> bytes
    evals: list = field(default_factory=list)       # (elapsed_s, epoch, test_acc)


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs from /proc/stat; None where there is none.

    On a virtual machine "steal" is time the hypervisor ran something else
    while this guest wanted the CPU: a slowdown no process here can see."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])


def _median(xs):
    return statistics.median(xs) if xs else 0.0


def _find_comm(rec: dict) -> tuple[float | None, float | None, float | None]:
    """Total / exposed communication (ms) and overlap ratio of a vit_train step record
    (its time_ms block, written with wall_clock_breakdown)."""
    t = rec.get("time_ms") or {}

    def num(k):
        return float(t[k]) if isinstance(t.get(k), (int, float)) else None

    return num("comm_total"), num("comm"), num("overlap")


def summarize(path: Path, warmup: int, global_batch: int) -> Summary:
    s = Summary()
    recs = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    start = next((r for r in recs if r.get("event") == "start"), {})
    for k in ("world_size", "world"):
        if isinstance(start.get(k), int):
            s.world_reported = start[k]
    trains = [r for r in recs if r.get("event") == "train"]
    trains.sort(key=lambda r: r.get("step", 0))
    s.steps = len(trains)
    walls, phases, comm = [], {k: [] for k in ("data", "upload", "forward", "backward", "comm", "optimizer")}, []
    prev = None
    for r in trains:
        el = r.get("elapsed_s")
        if prev is not None and el is not None and r.get("step", 0) > warmup:
            walls.append(el - prev)
            for k in phases:
                v = (r.get("time_ms") or {}).get(k)
                if isinstance(v, (int, float)):
                    phases[k].append(float(v))
            comm.append(_find_comm(r))
        prev = el
    if walls:
        s.walls = walls
        s.step_s, s.step_min_s, s.step_max_s = _median(walls), min(walls), max(walls)
        s.images_per_s = global_batch / s.step_s if s.step_s > 0 else 0.0
    s.phases_ms = {k: _median(v) for k, v in phases.items() if v}
    tot = [c[0] for c in comm if c[0] is not None]
    exp = [c[1] for c in comm if c[1] is not None]
    rat = [c[2] for c in comm if c[2] is not None]
    s.comm_total_ms = _median(tot) if tot else None
    s.comm_exposed_ms = _median(exp) if exp else None
    s.overlap_ratio = _median(rat) if rat else None
    # Epoch times: the span of each epoch's train records (plus one step).
    by_epoch: dict[int, list[float]] = {}
    for r in trains:
        if "epoch" in r and "elapsed_s" in r:
            by_epoch.setdefault(r["epoch"], []).append(r["elapsed_s"])
    if len(by_epoch) >= 1 and all(len(v) > 1 for v in by_epoch.values()):
        ends = [max(v) for _, v in sorted(by_epoch.items())]
        starts = [0.0] + ends[:-1]
        s.epoch_s = statistics.mean(e - b for b, e in zip(starts, ends))
    elapsed_at = {r.get("step"): r.get("elapsed_s") for r in trains}
    for r in recs:
        if r.get("event") == "eval":
            s.evals.append((elapsed_at.get(r.get("step")), r.get("epoch"), r.get("test_acc")))
    final = next((r for r in recs if r.get("event") == "final"), None)
    if final:
        s.test_acc, s.test_loss, s.wall_s = final.get("test_acc"), final.get("test_loss"), final.get("wall_s", 0.0)
    return s


class Runner:
    """Launches configurations; knows the machine, the binaries and the datasets."""

    def __init__(self, vit_train: Path, mpirun: str, machine: Machine, out: Path, warmup: int, steps: int,
                 model_flags: list[str], data_dir: str | None, timeout_s: int, dry_run: bool = False,
                 raw: Path | None = None):
        # out: the summaries a reader needs (committed); raw: what a run
        # regenerates (logs, per-step metrics), by default beside them.
        self.vit_train, self.mpirun, self.machine, self.out = vit_train, mpirun, machine, out
        self.raw = raw if raw is not None else out
        self.warmup, self.steps, self.model_flags, self.data_dir = warmup, steps, model_flags, data_dir
        self.timeout_s, self.dry_run = timeout_s, dry_run
        self._datasets: dict[str, tuple[list[str], str, str]] = {}
        # (ZeRO stage, checkpointing, world > 1) -> the binary's reason for refusing it
        self.refused: dict[tuple[int, bool, bool], str] = {}
        (self.raw / "logs").mkdir(parents=True, exist_ok=True)
        (self.raw / "metrics").mkdir(parents=True, exist_ok=True)

    # --- datasets ---------------------------------------------------------------
    SHAPES = {"cifar10": (32, 3, 10), "cifar100": (32, 3, 100), "fashion-mnist": (28, 1, 10)}

    # vit_train's defaults are the Fashion-MNIST recipe (RandAugment and mixup
    # on since 2026-12-03); the studies keep the plain pipeline they were
    # measured with, so their figures stay comparable.
    PLAIN_AUGMENTATION = ["--randaugment-ops", "0", "--mixup-alpha", "0"]

    def dataset(self, name: str, synthetic_train: int = 8192, synthetic_test: int = 512) -> tuple[list[str], str, str]:
        """Flags for `name`, the dataset actually used, and a note (why synthetic, if it is)."""
        key = f"{name}/{synthetic_train}/{synthetic_test}"
        if key not in self._datasets:
            flags, used, note = self._dataset_uncached(name, synthetic_train, synthetic_test)
            self._datasets[key] = (flags + self.PLAIN_AUGMENTATION, used, note)
        return self._datasets[key]

    def _dataset_uncached(self, name: str, synthetic_train: int, synthetic_test: int) -> tuple[list[str], str, str]:
        if name == "synthetic-hard":
            # CIFAR-10's shape with enough pixel noise that a few epochs reach
            # ~65%, not 100%: the learning rate's effect on accuracy shows.
            flags = ["--dataset", "synthetic", "--synthetic-image-size", "32", "--synthetic-channels", "3",
                     "--synthetic-classes", "10", "--synthetic-train", "1024", "--synthetic-test", "512",
                     "--synthetic-noise", "200"]
            return flags, "synthetic 32x32x3, 10 classes, noise 200, 1,024 train images", ""
        flags = ["--dataset", name] + (["--data-dir", self.data_dir] if self.data_dir else [])
        ok, why = self._probe_dataset(name, flags)
        if ok:
            result = (flags, name, "")
        else:
            side, ch, classes = self.SHAPES.get(name, (32, 3, 10))
            flags = ["--dataset", "synthetic", "--synthetic-image-size", str(side), "--synthetic-channels", str(ch),
                     "--synthetic-classes", str(classes), "--synthetic-train", str(synthetic_train),
                     "--synthetic-test", str(synthetic_test)]
            result = (flags, f"synthetic {side}x{side}x{ch}, {classes} classes (in place of {name})",
                      f"{name} not found ({why}); used the synthetic set of the same shape")
        return result

    def _probe_dataset(self, name: str, flags: list[str]) -> tuple[bool, str]:
        if self.dry_run:
            return True, ""
        # A one-step run on one process fails fast, naming every path tried, when the files are missing.
        cmd = [str(self.vit_train), *flags, *self.model_flags, "--max-steps", "1", "--micro-batch-size", "2",
               "--train-batch-size", "2", "--threads", "1", "--steps-per-print", "1000"]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=self.raw / "logs")
        except subprocess.TimeoutExpired:
            return True, ""  # it got past loading
        if p.returncode == 0:
            return True, ""
        err = (p.stderr.strip().splitlines() or ["no message"])[-1]
        return False, err[:300]

    # --- launching --------------------------------------------------------------
    def check(self, c: Config, global_batch: int | None = None) -> str | None:
        m = self.machine
        if c.world > m.allowed(c.world):
            what = (f"{m.cores} cores, oversubscription to {m.oversubscribe_to}" if m.device == "cpu"
                    else f"{m.gpus} GPUs")
            return f"needs {c.world} ranks; this machine allows {m.allowed(c.world)} ({what})"
        if global_batch is not None and global_batch % (c.world * c.accum) != 0:
            return (f"global batch {global_batch} is not divisible by world size {c.world} x accumulation {c.accum}")
        if c.micro < 1:
            return "micro-batch below 1"
        if (c.zero_stage, c.checkpointing, c.world > 1) in self.refused:
            return f"not available: {self.refused[(c.zero_stage, c.checkpointing, c.world > 1)]}"
        return None

    def command(self, c: Config, data_flags: list[str]) -> list[str]:
        m = self.machine
        mpi = [self.mpirun, "--allow-run-as-root", "-np", str(c.world)]
        if m.oversubscribed(c.world):
            mpi += ["--oversubscribe", "--bind-to", "none"]
        elif m.device == "cpu":
            mpi += ["--bind-to", "core"]  # one core per rank
        if m.device == "cpu":
            mpi += ["-x", f"VITSCALE_MPI_PROGRESS={c.mpi_progress}"]  # explicit: not whatever the default is
        # The ZeRO axis records each rank's peak resident set: /usr/bin/time around every rank,
        # each appending its line to one file (ranks writing to the shared log interleave
        # their lines mid-number).
        timer = (["/usr/bin/time", "-a", "-o", str(self.rss_file(c).resolve()), "-f", "vit_scaling maxrss_kb=%M"]
                 if c.experiment == "zero" and Path("/usr/bin/time").exists() else [])
        model = list(c.model_flags) if c.model_flags is not None else self.model_flags
        args = [*timer, str(self.vit_train), *model, *data_flags,
                "--micro-batch-size", str(c.micro), "--gradient-accumulation-steps", str(c.accum),
                "--train-batch-size", str(c.global_batch),
                "--overlap-comm" if c.overlap else "--no-overlap-comm",
                "--reduce-bucket-size", str(c.bucket_elems),
                "--wall-clock-breakdown", "--steps-per-print", "1", "--seed", "1",
                "--device", m.device]
        if m.device == "cpu":
            args += ["--threads", str(m.threads(c.world))]
        if c.epochs is None:
            args += ["--max-steps", str(self.warmup + self.steps)]
        else:
            args += ["--epochs", str(c.epochs)]
        if c.lr is not None:
            args += ["--lr", f"{c.lr:g}"]
        if c.warmup_steps is not None:
            args += ["--warmup-steps", str(c.warmup_steps)]
        if c.warmup_epochs is not None:
            args += ["--warmup-epochs", f"{c.warmup_epochs:g}"]
        if c.train_subset:
            args += ["--train-subset", str(c.train_subset)]
        if c.zero_stage:
            args += ["--zero-stage", str(c.zero_stage)]
        if c.checkpointing:
            args += ["--activation-checkpointing"]
        return mpi + args

    def corun(self, c: Config, data_flags: list[str], tag: str) -> list[Summary]:
        """`cores` independent 1-rank copies of `c` at once, each pinned to its own core.

        What one rank computes when every core of the machine is busy, as in a
        multi-rank run, but without any communication: the per-rank profile
        the simulator starts from (shared caches, memory bandwidth and other
        work on the machine slow it as they slow the real run).
        """
        one = Config(**{**c.__dict__, "world": 1})
        argv = self.command(one, data_flags)
        argv = argv[argv.index(str(self.vit_train)):]
        procs, paths = [], []
        for core in range(self.machine.cores):
            path = self.raw / "metrics" / f"corun-{tag}-core{core}.jsonl"
            if path.exists():
                path.unlink()
            cmd = ["taskset", "-c", str(core), *argv, "--metrics-out", str(path.resolve())]
            log = open(self.raw / "logs" / f"corun-{tag}-core{core}.log", "w")
            log.write(shlex.join(cmd) + "\n\n")
            log.flush()
            procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.raw / "logs"), log))
            paths.append(path)
        out = []
        for (p, log), path in zip(procs, paths):
            try:
                rc = p.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = -1
            log.close()
            if rc == 0 and path.exists():
                out.append(summarize(path, self.warmup, one.global_batch))
        return out

    def rss_file(self, c: Config) -> Path:
        """Where the ranks of run `c` append their peak-RSS lines."""
        return self.raw / "logs" / f"{c.name}.rss"

    def run(self, c: Config, data_flags: list[str]) -> tuple[Summary, str]:
        metrics = self.raw / "metrics" / f"{c.name}.jsonl"
        log = self.raw / "logs" / f"{c.name}.log"
        cmd = self.command(c, data_flags) + ["--metrics-out", str(metrics.resolve())]
        text = shlex.join(cmd)
        if self.dry_run:
            return Summary(status="dry-run"), text
        for stale in (metrics, self.rss_file(c)):
            if stale.exists():
                stale.unlink()
        t0, cpu0 = time.monotonic(), cpu_times()
        try:
            with open(log, "w") as f:
                f.write(text + "\n\n")
                f.flush()
                p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=self.timeout_s,
                                   cwd=self.raw / "logs")
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = -1
        wall, stolen = time.monotonic() - t0, steal_pct(cpu0, cpu_times())
        if rc != 0 or not metrics.exists():
            lines = [l.strip() for l in log.read_text(errors="replace").splitlines()[1:] if l.strip()]
            # The program's own one-line error says more than the launcher's epilogue.
            errors = [l for l in lines if "error" in l.lower() and not l.startswith("mpirun")]
            tail = errors[-1:] if errors else lines[-3:]
            why = "timed out" if rc == -1 else f"exit {rc}"
            refused = zero_refusal(log.read_text(errors="replace")) if c.experiment == "zero" else None
            if refused:
                # The binary refuses the stage at start-up: not available, nor are its other world sizes.
                self.refused[(c.zero_stage, c.checkpointing, c.world > 1)] = refused
                return Summary(status="not available", error=refused, wall_s=wall), text
            return Summary(status="failed", error=f"{why}: {' | '.join(tail)[:400]}", wall_s=wall), text
        s = summarize(metrics, self.warmup if c.epochs is None else 0, c.global_batch)
        if s.wall_s == 0.0:
            s.wall_s = wall
        s.steal_pct = stolen
        rss = self.rss_file(c)
        s.rss_max_mib, s.plan_bytes = read_memory(log.read_text(errors="replace"),
                                                  rss.read_text(errors="replace") if rss.exists() else None)
        if c.world > 1 and s.world_reported is not None and s.world_reported != c.world:
            s.status = "not-data-parallel"
            s.error = f"vit_train reported world size {s.world_reported}, launched with {c.world}"
        return s, text


_RSS = re.compile(r"^vit_scaling maxrss_kb=(\d+)$", re.MULTILINE)
_PLAN_ROW = re.compile(r"^\s{2}(\S.*?)\s+(\d+) bytes\s+[\d.]+ MiB\s*$")


def read_memory(log_text: str, rss_text: str | None = None) -> tuple[float | None, dict]:
    """The largest rank's peak RSS in MiB (/usr/bin/time's lines: from rss_text, else from the
    log; None without them) and rank 0's printed memory plan (train/trainer.cpp: row -> bytes).
    Only whole lines count: two ranks' lines run together are no reading."""
    rss = [int(m) for m in _RSS.findall(log_text if rss_text is None else rss_text)]
    plan: dict[str, int] = {}
    in_plan = False
    for line in log_text.splitlines():
        if "memory plan" in line:
            in_plan, plan = True, {}
            continue
        m = _PLAN_ROW.match(line) if in_plan else None
        if m:
            plan[m.group(1)] = int(m.group(2))
        elif in_plan and plan:
            in_plan = False
    return (max(rss) / 1024.0 if rss else None), plan


def zero_refusal(log_text: str) -> str | None:
    """The binary's own line when it refuses a ZeRO stage or checkpointing at start-up, else None."""
    for line in log_text.splitlines():
        low = line.lower()
        names_key = any(k in low for k in ("zero_optimization.stage", "--zero-stage", "activation_checkpointing"))
        if names_key and any(w in low for w in ("implemented", "refuse", "not supported", "only", "must be",
                                                 "not one of", "unknown", "not available")):
            return line.strip()[:300]
    return None


def pass_order(grid, repeat: int) -> list:
    """The grid in the order pass `repeat` (0-based) runs it: forwards, then backwards, alternately."""
    return list(grid) if repeat % 2 == 0 else list(reversed(list(grid)))


# --- the simulator's profile of a measured run --------------------------------------

def _mean_phase(runs, key):
    return 1e-3 * sum(s.phases_ms.get(key, 0.0) for s in runs) / len(runs)


def measured_profile(shape: dict, runs, source: str) -> tuple[dict, float]:
    """The layer split `shape` (vit_scaling_profile) with the totals of `runs` (summaries of
    vit_train runs): forward, backward, optimizer, input and the rest of the step as overhead;
    and the runs' mean step-time coefficient of variation (the simulator's straggler term)."""
    fwd, bwd, opt = _mean_phase(runs, "forward"), _mean_phase(runs, "backward"), _mean_phase(runs, "optimizer")
    data = _mean_phase(runs, "data") + _mean_phase(runs, "upload")
    step = sum(s.step_s for s in runs) / len(runs)
    p = json.loads(json.dumps(shape))
    b0 = sum(seg["seconds"] for seg in p["backward"])
    for seg in p["backward"]:
        seg["seconds"] *= bwd / b0
    p.update(forward_s=fwd, optimizer_s=opt, input_s=data, step_overhead_s=max(0.0, step - (fwd + bwd + opt + data)))
    p["source"] = source
    cvs = [statistics.pstdev(s.walls) / statistics.mean(s.walls) for s in runs if len(s.walls) > 1]
    return p, (sum(cvs) / len(cvs) if cvs else 0.0)


def corun_profile(shape: dict, r: dict, source: str) -> tuple[dict, float, float | None] | None:
    """A multi-rank run's profile from the co-runs bracketing it (r["corun"]: the per-core
    summaries just before, and just after, the run; of its chosen repeat): in each bracket the slower core (synchronous
    steps wait for it), the brackets averaged. Returns (profile, step cv, after vs before: the
    relative change of the bracket's step, None with one bracket), None without a co-run.

    Every replayed multi-rank run of the study takes its profile this way (vit_scaling's axes and
    the ZeRO axis, zero_study.predict). The ZeRO axis once shared one profile per pass among all
    its points; on this VM that profile moved by ~10% from one pass to the next, and every 2- and
    4-rank point moved with it (17 against 23 of 24 within 15% in two runs of the same code on
    2026-12-03)."""
    brackets = [b for b in r.get("corun") or [] if b]
    if not brackets:
        return None
    runs = [max(b, key=lambda s: s.step_s) for b in brackets]
    prof, cv = measured_profile(shape, runs, source)
    diff = ((runs[1].step_s - runs[0].step_s) / (0.5 * (runs[0].step_s + runs[1].step_s))
            if len(runs) == 2 else None)
    return prof, cv, diff


def merge_repeats(passes: list[list[dict]]) -> list[dict]:
    """One result per configuration from several passes over the grid.

    Each configuration's figure is the repeat with the lowest median step:
    other work on the machine (the study cannot stop it) only ever adds time,
    so the fastest of repeats taken minutes apart is the least disturbed
    measurement. The chosen result carries every repeat's median
    (repeat_steps_s, in pass order) so the spread stays visible. Results of
    the first pass that no later pass repeated (accuracy runs, failures) pass
    through unchanged.
    """
    if not passes:
        return []
    merged = []
    for first in passes[0]:
        same = [first] + [r for p in passes[1:] for r in p if r["name"] == first["name"]]
        good = [r for r in same if r["status"] == "ok" and r.get("step_s")]
        if len(same) < 2 or not good:
            merged.append(first)
            continue
        best = dict(min(good, key=lambda r: r["step_s"]))
        best["repeat_steps_s"] = [r["step_s"] if r["status"] == "ok" else None for r in same]
        merged.append(best)
    return merged



def median_curve(curves: list[dict]) -> dict:
    """One measured curve from several launches of a benchmark.

    Points are [bytes, value, ...] (vit_allreduce_bench: seconds;
    vit_contended_bench: seconds, compute lost); each value becomes the median
    over the launches at that size. Sizes that only some launches measured
    are dropped.
    """
    if not curves:
        raise ValueError("median_curve: no curves")
    by_size: dict[float, list] = {}
    for c in curves:
        for p in c["points"]:
            by_size.setdefault(p[0], []).append(p)
    points = [[b] + [statistics.median(p[k] for p in ps) for k in range(1, len(ps[0]))]
              for b, ps in sorted(by_size.items()) if len(ps) == len(curves)]
    return {**curves[0], "points": points, "launches": len(curves)}


def median_curves(curves: list[dict]) -> list[dict]:
    """median_curve per collective (a launch of vit_allreduce_bench or vit_contended_bench
    measures the all-reduce, the reduce-scatter and the all-gather, one curve each; a curve
    without a "collective" is an all-reduce), in the order the collectives first appear."""
    kinds: dict[str, list[dict]] = {}
    for c in curves:
        kinds.setdefault(c.get("collective", "allreduce"), []).append(c)
    return [median_curve(cs) for cs in kinds.values()]


def parse_gaps_us(text: str | None, default=(1000,)) -> list[float]:
    """vit_scaling --contended-gap-us ("1000,4000"): ascending distinct positive microseconds;
    `default` where it is not given."""
    if not text:
        return sorted({float(g) for g in default})
    try:
        gaps = [float(g) for g in text.split(",") if g.strip()]
    except ValueError:
        gaps = []
    if not gaps or any(g <= 0 for g in gaps):
        raise SystemExit(f"vit_scaling: --contended-gap-us wants positive microseconds, comma-separated; got {text!r}")
    return sorted(set(gaps))


def contended_steps(gap_us: float) -> int:
    """vit_contended_bench's timed steps per size: 15 at a 1 ms gap, fewer where each step computes
    longer (at least 5), so that a launch at 10 ms takes about as long as one at 3 ms."""
    return max(5, round(15 * 1000 / gap_us))
