"""vit_allreduce_bench and vit_contended_bench under mpirun: each writes one curve per collective.

Usage (CTest): collective_benches_test.py ALLREDUCE_BENCH CONTENDED_BENCH MPIRUN [MPIRUN FLAGS...]
Small messages and few repetitions: this checks what the benches write, not what the
machine measures (tools/scaling/vit_scaling runs them at full size)."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

KINDS = {"allreduce", "reduce_scatter", "allgather"}


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    return p.returncode, p.stdout + p.stderr


def main() -> int:
    idle_bench, contended_bench, mpirun, *flags = sys.argv[1:]
    env = ["-x", "OMP_NUM_THREADS=1", "-x", "OPENBLAS_NUM_THREADS=1", "-x", "VITSCALE_MPI_PROGRESS=thread"]
    failures = []

    def expect(ok, what):
        if not ok:
            failures.append(what)
            print("FAILED:", what)

    with tempfile.TemporaryDirectory() as tmp:
        for np in (2, 3):  # 3 ranks: ShardLayout's blocks are unequal (256 elements: 96, 96, 64)
            net = Path(tmp) / f"net{np}.json"
            rc, out = run([mpirun, "-np", str(np), *flags, *env, idle_bench, "--out", str(net), "--max-mib", "0.25",
                           "--reps", "3"])
            expect(rc == 0, f"np {np}: vit_allreduce_bench exits 0 (rc {rc}):\n{out}")
            if rc != 0:
                continue
            model = json.loads(net.read_text())
            curves = {c.get("collective", "allreduce"): c for c in model["measured"] if c["world"] == np}
            expect(set(curves) == KINDS, f"np {np}: one idle curve per collective, got {sorted(curves)}")
            for kind, c in curves.items():
                sizes = [p[0] for p in c["points"]]
                expect(sizes == [1024.0 * 2**k for k in range(len(sizes))] and sizes[-1] == 0.25 * 2**20,
                       f"np {np} {kind}: sizes 1 KiB .. 256 KiB doubling, got {sizes}")
                expect(all(p[1] > 0 for p in c["points"]), f"np {np} {kind}: every time is positive")
            expect(model["intra"]["bandwidth_GBps"] > 0, f"np {np}: the ring fit has a bandwidth")
            if np != 2:
                continue
            rc, out = run([mpirun, "-np", "2", *flags, *env, contended_bench, "--network", str(net), "--steps", "2",
                           "--buckets", "2", "--gap-us", "200", "--max-mib", "0.25"])
            expect(rc == 0, f"vit_contended_bench exits 0 (rc {rc}):\n{out}")
            if rc == 0:
                model = json.loads(net.read_text())
                cont = {c.get("collective", "allreduce"): c for c in model["contended"]}
                expect(set(cont) == KINDS, f"one contended curve per collective, got {sorted(cont)}")
                expect(all(c["progress"] == "thread" and len(c["points"]) == 5 and all(p[1] > 0 for p in c["points"])
                           for c in cont.values()),
                       "contended curves: progress thread, 5 sizes (1 KiB x4 .. 256 KiB), positive times")
                expect(len(model["measured"]) == 3, "the idle curves stay in the file")
                # A launch at another gap adds its curves beside the first gap's (the simulator
                # interpolates between gaps); one at the same gap again replaces them.
                for gap in ("400", "200"):
                    rc, out = run([mpirun, "-np", "2", *flags, *env, contended_bench, "--network", str(net),
                                   "--steps", "2", "--buckets", "2", "--gap-us", gap, "--max-mib", "0.25",
                                   "--collectives", "allreduce"])
                    expect(rc == 0, f"vit_contended_bench --gap-us {gap} exits 0 (rc {rc}):\n{out}")
                gaps = sorted((c.get("collective", "allreduce"), c["gap_us"])
                              for c in json.loads(net.read_text())["contended"])
                expect(gaps == [("allgather", 200.0), ("allreduce", 200.0), ("allreduce", 400.0),
                                ("reduce_scatter", 200.0)],
                       f"contended curves by collective and gap: 200 us for each, 400 us for the all-reduce; got {gaps}")
                # Re-measuring one collective replaces its curve and keeps the others'.
                rc, out = run([mpirun, "-np", "2", *flags, *env, idle_bench, "--out", str(net), "--merge",
                               "--reps", "2", "--max-mib", "0.25", "--collectives", "allreduce"])
                expect(rc == 0, f"vit_allreduce_bench --merge --collectives allreduce exits 0 (rc {rc}):\n{out}")
                if rc == 0:
                    kinds = sorted(c.get("collective", "allreduce") for c in json.loads(net.read_text())["measured"]
                                   if c["world"] == 2)
                    expect(kinds == sorted(KINDS), f"after re-measuring the all-reduce: one curve each, got {kinds}")
            rc, out = run([mpirun, "-np", "2", *flags, *env, idle_bench, "--out", str(net), "--merge",
                           "--collectives", "allreduce,scatter"])
            expect(rc != 0 and "scatter" in out and "reduce_scatter" in out,
                   f"an unknown collective is refused naming it and the choices (rc {rc}):\n{out}")
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
