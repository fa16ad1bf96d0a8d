"""zero_study.py — the scaling study's ZeRO axis: stage 0-3 x world 1/2/4 x activation checkpointing.

Each point is one `mpirun -np N vit_train --zero-stage S [--activation-checkpointing]` run of a
small ViT (fixed warm-up + timed steps, like the other timed experiments), with each rank's peak
RSS (/usr/bin/time's maximum resident set) and the memory plan rank 0 prints at start-up. A stage
the binary refuses (ZeRO-2 and -3 until they land) is recorded as "not available" with the
binary's own words; the axis goes on.

The simulator's check (zero_validation.md): every measured point is replayed by
`vit_scaling_sim --zero-stage S [--activation-checkpointing]` from
  - the layer split of vit_scaling_profile on this model and micro-batch,
  - totals (forward, backward, optimizer, input) measured with every core busy: at world 1 the
    1-rank stage-0 run itself; at worlds 2 and 4 concurrent 1-rank stage-0 copies, one per core
    (Runner.corun), measured just before and just after the point's chosen repeat (corun_profile),
    as the other axes do; world 4 is oversubscribed (--cpu-cores),
  - the machine's measured network model (zero_network.json): the all-reduce, the reduce-scatter
    and the all-gather each timed on idle cores and while the core computes, through the calls
    MpiCommunicator makes (an older model without the last two charges each half an all-reduce;
    Open MPI's 2-rank reduce-scatter of a 4 MiB bucket costs nearly a whole one).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from study_runner import Config, corun_profile, measured_profile

# A model whose parameters and optimizer state are a visible share of a rank's memory
# (10.8 M parameters: 43 MB fp32 weights, 87 MB AdamW moments) with few tokens, so that a
# step stays well under a second on one core: 32x32 input, patch 8 (17 tokens), width 384,
# 6 blocks, 6 heads, MLP 1536.
ZERO_MODEL = ("--model", "vit-cpu", "--image-size", "32", "--patch-size", "8", "--dim", "384", "--depth", "6",
              "--heads", "6", "--mlp-dim", "1536")
ZERO_DIMS = {"image": 32, "channels": 3, "patch": 8, "dim": 384, "depth": 6, "heads": 6, "mlp": 1536, "classes": 10}
ZERO_MICRO = 8
ZERO_BUCKET_ELEMS = 1_048_576  # 4 MiB buckets: about 11 per step, so that overlap has something to hide
# The axis's spacing between collectives on a 2-core machine, at which the contended curves are
# measured (vit_scaling --contended-gap-us): 4-5 ms in backward (about 13 buckets over 65 ms),
# ~9 ms with checkpointing's recompute; forward and the optimizer come before the first bucket.
CONTENDED_GAPS_US = (1000, 4000, 10000)
STAGES = (0, 1, 2, 3)
WORLDS = (1, 2, 4)


def corun_config(name: str) -> Config:
    """The 1-rank stage-0 run whose concurrent copies (one per core), taken just before and just
    after a multi-rank point, give that point's profile."""
    return Config("profile", name, "cifar10", 1, ZERO_MICRO, bucket_elems=ZERO_BUCKET_ELEMS, model_flags=ZERO_MODEL)


def zero_grid() -> list[tuple[Config, int | None]]:
    """Stage-major, so that a refused stage is found on its first point."""
    g = []
    for s in STAGES:
        for n in WORLDS:
            for ckpt in (False, True):
                name = f"zero-s{s}-w{n}-{'ckpt' if ckpt else 'full'}"
                g.append((Config("zero", name, "cifar10", n, ZERO_MICRO, bucket_elems=ZERO_BUCKET_ELEMS,
                                 model_flags=ZERO_MODEL, zero_stage=s, checkpointing=ckpt), None))
    return g


# --- the simulator's check -------------------------------------------------------------

def zero_shape(prof_bin: Path, raw: Path) -> dict | None:
    d = ZERO_DIMS
    path = raw / "profiles" / "zero-shape.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["taskset", "-c", "0", str(prof_bin), "--image-size", str(d["image"]), "--patch-size", str(d["patch"]),
           "--dim", str(d["dim"]), "--depth", str(d["depth"]), "--heads", str(d["heads"]), "--mlp-dim", str(d["mlp"]),
           "--channels", str(d["channels"]), "--classes", str(d["classes"]), "--micro-batch", str(ZERO_MICRO),
           "--threads", "1", "--steps", "3", "--warmup", "1", "--out", str(path)]
    with open(raw / "logs" / "profile-zero.log", "w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False, timeout=600)
    return json.loads(path.read_text()) if path.exists() else None


def predict(results: list[dict], sim: Path, prof_bin: Path, net: Path, raw: Path, cores: int, cpu_model: str,
            steps: int) -> dict[str, dict]:
    """Adds predicted_* to every ok zero point (in place); returns the predictions of the points
    that did not run (a stage not available yet), by name, so the ladder shows them simulated.
    A multi-rank point is replayed from its own co-runs (corun_profile); a point without any (not
    run, or its co-runs failed) from its world's stage-0 point's, else from the 1-rank profile."""
    zero = {r["name"]: r for r in results if r["experiment"] == "zero" and r["status"] == "ok"}
    alone = zero.get("zero-s0-w1-full")
    if alone is None or not sim.exists() or not prof_bin.exists() or not net.exists():
        print("  (zero axis: no stage-0 world-1 run, simulator binaries or network model: no prediction)")
        return {}
    shape = zero_shape(prof_bin, raw)
    if shape is None:
        print("  (zero axis: vit_scaling_profile failed: no prediction)")
        return {}
    alone_prof, _ = measured_profile(shape, [alone["summary"]],
                                     f"measured: {alone['name']} (1 rank, {steps} steps) x vit_scaling_profile; "
                                     f"{cpu_model}")
    alone_path = raw / "profiles" / "zero-alone.json"
    alone_path.write_text(json.dumps(alone_prof, indent=1))
    # name -> (profile file, jitter cv, note) for every multi-rank point with co-runs of its own
    own = {}
    for name, r in zero.items():
        got = None if r["world"] < 2 else corun_profile(
            shape, r, f"measured: {cores} concurrent 1-rank stage-0 runs, one per core, just before and after "
                      f"{r.get('tag', name)} (the slower core's medians) x vit_scaling_profile; {cpu_model}")
        if got is None:
            continue
        prof, cv, diff = got
        path = raw / "profiles" / f"zero-corun-{name}.json"
        path.write_text(json.dumps(prof, indent=1))
        after = "" if diff is None else f", after vs before {100 * diff:+.0f}%"
        own[name] = (path, cv, f"co-run profile around the run, cv {cv:.2f}{after}")
    d = ZERO_DIMS
    memory_of = ",".join(str(d[k]) for k in ("image", "channels", "patch", "dim", "depth", "heads", "mlp", "classes"))
    simulated_only = {}
    for cfg, _ in zero_grid():
        r = zero.get(cfg.name)
        if r is None:
            r = simulated_only.setdefault(cfg.name, {**cfg.__dict__})
        if cfg.world == 1:
            path, cv, note = alone_path, 0.0, "1-rank run's own profile"
        elif cfg.name in own:
            path, cv, note = own[cfg.name]
        elif f"zero-s0-w{cfg.world}-full" in own:
            path, cv, note = own[f"zero-s0-w{cfg.world}-full"]
            note = f"no co-run of its own: stage 0's at {cfg.world} ranks ({note})"
        else:
            path, cv, note = alone_path, 0.0, "no co-run profile: the 1-rank run's (all cores busy ignored)"
        cmd = [str(sim), "--profile", str(path), "--network-json", str(net), "--world", str(cfg.world),
               "--micro-batch", str(cfg.micro), "--accumulation", str(cfg.accum),
               "--overlap", "on" if cfg.overlap else "off", "--bucket-mb", f"{cfg.bucket_elems * 4 / 2**20:.6f}",
               "--cpu-cores", str(cores), "--jitter-cv", f"{cv:.4f}", "--mpi-progress", cfg.mpi_progress,
               "--zero-stage", str(cfg.zero_stage), "--memory-of", memory_of, "--json", "-"]
        if cfg.checkpointing:
            cmd.append("--activation-checkpointing")
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        try:
            point = json.loads(res.stdout[res.stdout.index("{"):])["points"][-1]
        except (ValueError, KeyError, IndexError):
            r["prediction_note"] = f"simulator failed: {res.stderr.strip()[:200]}"
            continue
        r["predicted_step_s"] = point["step_s"]
        r["predicted_exposed_s"] = point["exposed_s"]
        r["predicted_recompute_s"] = point["recompute_s"]
        r["predicted_memory"] = point.get("memory_bytes", {})
        r["prediction_note"] = note
        if "step_s" in r:
            r["predicted_error"] = (point["step_s"] - r["step_s"]) / r["step_s"]
    return simulated_only


# --- the report --------------------------------------------------------------------------

def _ms(x):
    return "—" if x is None else f"{1e3 * x:.1f}"


def _mib(x):
    return "—" if x is None else f"{x / 2**20:.1f}"


def _ratio(a, b):
    return a / b if a is not None and b else None


def report(results: list[dict], skipped: list[dict], tolerance: float, load: tuple[float, float], cpu: str,
           simulated_only: dict[str, dict] | None = None) -> str:
    """zero_validation.md's table: every point of the axis (measured, simulated, or not available, and why).

    Beside the absolute figures, two comparisons within one world size, which drift in the
    machine's speed touches less: the step relative to stage 0 without checkpointing
    (measured / simulated), and the memory saved relative to stage 0 with the same
    checkpointing (max RSS / simulated)."""
    by_name = {r["name"]: r for r in results if r["experiment"] == "zero"}
    ok = {k: r for k, r in by_name.items() if r["status"] == "ok"}
    why = {s["name"]: s["reason"] for s in skipped if s["experiment"] == "zero"}
    rows, within, modelled = [], 0, 0
    for cfg, _ in zero_grid():
        r = ok.get(cfg.name)
        ck = "on" if cfg.checkpointing else "off"
        if r is None:
            reason = why.get(cfg.name) or (by_name.get(cfg.name) or {}).get("error") or "not run"
            sim = (simulated_only or {}).get(cfg.name, {})
            base = ok.get(f"zero-s0-w{cfg.world}-full")
            rel_s = _ratio(sim.get("predicted_step_s"), base and base.get("predicted_step_s"))
            rows.append(f"| {cfg.zero_stage} | {cfg.world} | {ck} | not available | {_ms(sim.get('predicted_step_s'))} "
                        f"| | {'—' if rel_s is None else f'— / {rel_s:.2f}'} | | "
                        f"{_ms(sim.get('predicted_exposed_s'))} | | "
                        f"{_mib((sim.get('predicted_memory') or {}).get('total'))} | | | {reason} |")
            continue
        base = ok.get(f"zero-s0-w{cfg.world}-full")
        base_ck = ok.get(f"zero-s0-w{cfg.world}-{'ckpt' if cfg.checkpointing else 'full'}")
        plan = r.get("plan_bytes") or {}
        mem = (r.get("predicted_memory") or {}).get("total")
        err = r.get("predicted_error")
        if err is not None:
            modelled += 1
            within += abs(err) <= tolerance
        exp = r.get("comm_exposed_ms")
        rel_m = _ratio(r["step_s"], base and base["step_s"])
        rel_s = _ratio(r.get("predicted_step_s"), base and base.get("predicted_step_s"))
        rel = "—" if rel_m is None else f"{rel_m:.2f} / {'—' if rel_s is None else f'{rel_s:.2f}'}"
        saved_m = (base_ck["rss_max_mib"] - r["rss_max_mib"]
                   if base_ck and base_ck.get("rss_max_mib") is not None and r.get("rss_max_mib") is not None
                   else None)
        base_mem = (base_ck.get("predicted_memory") or {}).get("total") if base_ck else None
        saved_s = (base_mem - mem) / 2**20 if base_mem is not None and mem is not None else None
        saved = "—" if saved_m is None else f"{saved_m:.0f} / {'—' if saved_s is None else f'{saved_s:.0f}'}"
        rss = "—" if r.get("rss_max_mib") is None else f"{r['rss_max_mib']:.0f}"
        over = " (oversubscribed)" if r.get("oversubscribed") else ""
        rows.append(
            f"| {cfg.zero_stage} | {cfg.world}{over} | {ck} | {_ms(r['step_s'])} | {_ms(r.get('predicted_step_s'))} | "
            f"{'—' if err is None else f'{100 * err:+.1f}%'}"
            f"{'' if err is None or abs(err) <= tolerance else ' **miss**'} | {rel} | "
            f"{'—' if exp is None else f'{exp:.1f}'} | {_ms(r.get('predicted_exposed_s'))} | "
            f"{_mib(plan.get('peak (total)'))} | {_mib(mem)} | {rss} | {saved} | {r.get('prediction_note', '')} |")
    head = ("| stage | ranks | ckpt | measured step ms | simulated ms | error | step vs stage 0 (meas. / sim.) | "
            "measured exposed comm ms | simulated exposed ms | plan peak MiB (rank 0) | simulated memory MiB | "
            "max RSS MiB | saved vs stage 0, MiB (RSS / sim.) | note |\n"
            "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
    summary = (f"\n{within} of {modelled} simulated points within ±{100 * tolerance:.0f}% of the measured step. "
               f"Machine: {cpu}; load average (1 min) at the start / end of the axis: {load[0]:.2f} / {load[1]:.2f} "
               "(the study's own ranks included).\n")
    return head + "\n".join(rows) + "\n" + summary
