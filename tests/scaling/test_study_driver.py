"""Tests of the study driver's metrics reading and skip rules (tools/scaling/study_runner.py).

Run by CTest as scaling:driver (python3 -m unittest); needs no binaries.
"""

import json
import re
import sys
import tempfile
import unittest
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "scaling"))

from study_runner import (Config, Machine, Runner, contended_steps, corun_profile, median_curve, median_curves,  # noqa: E402
                          merge_repeats, parse_gaps_us, pass_order, Summary, read_memory, steal_pct, summarize,
                          zero_refusal)
import zero_study  # noqa: E402


def write_jsonl(records):
    f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
    for r in records:
        f.write(json.dumps(r) + "\n")
    f.close()
    return Path(f.name)


class SummarizeTest(unittest.TestCase):
    def test_median_min_max_over_timed_steps_only(self):
        # Steps 1-2 are warm-up; the timed step walls are 0.2, 0.4, 0.3.
        el = [1.0, 1.5, 1.7, 2.1, 2.4]
        recs = [{"event": "start", "world_size": 2}]
        recs += [{"event": "train", "step": i + 1, "epoch": 1, "elapsed_s": e,
                  "time_ms": {"data": 1.0, "upload": 0.25 * (i + 1), "forward": 50.0, "backward": 100.0,
                              "comm": 5.0 * (i + 1), "optimizer": 2.0}} for i, e in enumerate(el)]
        recs += [{"event": "eval", "epoch": 1, "step": 5, "test_acc": 0.5},
                 {"event": "final", "test_acc": 0.5, "test_loss": 1.0, "images_per_s": 10, "wall_s": 3.0}]
        s = summarize(write_jsonl(recs), warmup=2, global_batch=64)
        self.assertAlmostEqual(s.step_s, 0.3)
        self.assertAlmostEqual(s.step_min_s, 0.2)
        self.assertAlmostEqual(s.step_max_s, 0.4)
        self.assertAlmostEqual(s.images_per_s, 64 / 0.3)
        self.assertAlmostEqual(s.comm_exposed_ms, 20.0)  # median of 15, 20, 25
        self.assertAlmostEqual(s.phases_ms["upload"], 1.0)  # median of 0.75, 1.0, 1.25
        self.assertAlmostEqual(s.phases_ms["data"], 1.0)
        self.assertEqual(s.world_reported, 2)
        self.assertEqual(s.evals, [(2.4, 1, 0.5)])

    def test_total_comm_and_overlap_when_reported(self):
        recs = [{"event": "train", "step": i, "elapsed_s": 0.1 * i,
                 "time_ms": {"comm": 2.0, "comm_total": 10.0, "overlap": 0.8}} for i in range(1, 5)]
        s = summarize(write_jsonl(recs), warmup=1, global_batch=8)
        self.assertAlmostEqual(s.comm_total_ms, 10.0)
        self.assertAlmostEqual(s.overlap_ratio, 0.8)


class SkipRulesTest(unittest.TestCase):
    def setUp(self):
        self.out = Path(tempfile.mkdtemp())
        machine = Machine("cpu", cores=2, gpus=0, max_ranks=2, oversubscribe_to=4)
        self.runner = Runner(Path("/nonexistent/vit_train"), "mpirun", machine, self.out, 3, 10, [], None, 60,
                             dry_run=True)

    def test_more_ranks_than_allowed(self):
        reason = self.runner.check(Config("strong", "x", "cifar10", 8, 8), 64)
        self.assertIn("allows 4", reason)

    def test_batch_not_divisible(self):
        reason = self.runner.check(Config("strong", "x", "cifar10", 3, 21), 64)
        self.assertIn("not divisible", reason)

    def test_oversubscribed_runs_are_marked_and_unbound(self):
        cmd = self.runner.command(Config("strong", "x", "cifar10", 4, 16), [])
        self.assertIn("--oversubscribe", cmd)
        self.assertNotIn("core", cmd)
        cmd = self.runner.command(Config("strong", "x", "cifar10", 2, 32), [])
        self.assertIn("core", cmd)
        off = Config("comm", "y", "cifar10", 2, 16, overlap=False)
        self.assertIn("--no-overlap-comm", self.runner.command(off, []))

    def test_the_progress_mode_reaches_the_ranks_environment(self):
        for progress in ("thread", "polling"):
            cmd = self.runner.command(Config("comm", "x", "cifar10", 2, 16, mpi_progress=progress), [])
            self.assertEqual(cmd[cmd.index("-x") + 1], f"VITSCALE_MPI_PROGRESS={progress}")


class ZeroAxisTest(unittest.TestCase):
    LOG = ("mpirun ...\nmemory plan (one allocation per arena):\n"
           "  parameters           42929920 bytes       40.94 MiB\n"
           "  activations (ckpt)     14933248 bytes       14.24 MiB\n"
           "  peak (total)        186653184 bytes      178.01 MiB\n"
           "[ep   1/1] step       1/2  50.0%  loss 2.3881\n"
           "vit_scaling maxrss_kb=300000\nvit_scaling maxrss_kb=310272\n")

    def test_the_plan_and_the_largest_ranks_rss_are_read_from_the_log(self):
        rss, plan = read_memory(self.LOG)
        self.assertAlmostEqual(rss, 310272 / 1024)
        self.assertEqual(plan, {"parameters": 42929920, "activations (ckpt)": 14933248, "peak (total)": 186653184})
        self.assertEqual(read_memory("no plan here"), (None, {}))

    def test_rss_lines_of_two_ranks_run_together_are_no_reading(self):
        # Two ranks' /usr/bin/time lines interleaved in a shared log (seen in an axis run).
        mangled = "vit_scaling maxrss_kb=vit_scaling maxrss_kb=406316406148\n"
        self.assertEqual(read_memory(mangled)[0], None)
        # The ranks' own file (time -a -o) is read instead of the log when given.
        rss, _ = read_memory(mangled, "vit_scaling maxrss_kb=406316\nvit_scaling maxrss_kb=406148\n")
        self.assertAlmostEqual(rss, 406316 / 1024)
        self.assertEqual(read_memory(self.LOG, "")[0], None)

    def test_a_refused_stage_is_recognised_by_the_binarys_words(self):
        refused = "vit_train: error: zero_optimization.stage (--zero-stage) is 2: only stages 0 and 1 are implemented"
        self.assertEqual(zero_refusal("mpirun noise\n" + refused + "\n"), refused)
        self.assertIsNone(zero_refusal("vit_train: error: cannot open data file"))

    def test_the_axis_is_stage_by_world_by_checkpointing_and_skips_what_was_refused(self):
        grid = [c for c, _ in zero_study.zero_grid()]
        self.assertEqual(len(grid), 4 * 3 * 2)
        self.assertEqual({(c.zero_stage, c.world, c.checkpointing) for c in grid},
                         {(s, w, k) for s in range(4) for w in (1, 2, 4) for k in (False, True)})
        runner = Runner(Path("/nonexistent/vit_train"), "mpirun", Machine("cpu", 2, 0, 2, 4), Path(tempfile.mkdtemp()),
                        1, 2, [], None, 60, dry_run=True)
        s3 = next(c for c in grid if c.zero_stage == 3 and c.world == 2 and not c.checkpointing)
        cmd = runner.command(s3, [])
        self.assertIn("--zero-stage", cmd)
        self.assertEqual(cmd[cmd.index("--zero-stage") + 1], "3")
        if Path("/usr/bin/time").exists():  # each rank's peak RSS
            self.assertLess(cmd.index("/usr/bin/time"), cmd.index("/nonexistent/vit_train"))
        self.assertIsNone(runner.check(s3))
        runner.refused[(3, False, True)] = "only stages 0 and 1 are implemented"
        self.assertIn("not available", runner.check(s3))
        s3_one = next(c for c in grid if c.zero_stage == 3 and c.world == 1 and not c.checkpointing)
        self.assertIsNone(runner.check(s3_one))  # refused at world > 1 says nothing of world 1

    def test_the_report_lists_every_point_even_those_not_available(self):
        ok = {"name": "zero-s0-w1-full", "experiment": "zero", "status": "ok", "step_s": 0.2, "world": 1,
              "predicted_step_s": 0.25, "predicted_error": 0.25, "plan_bytes": {"peak (total)": 2**20}}
        skipped = [{"name": "zero-s2-w2-full", "experiment": "zero", "reason": "not available: only stages 0 and 1"}]
        text = zero_study.report([ok], skipped, 0.15, (0.5, 1.0), "AMD EPYC, 2 cores")
        self.assertEqual(len(re.findall(r"^\| \d", text, re.M)), 24)  # a row per point of the axis
        self.assertIn("+25.0% **miss**", text)
        self.assertIn("not available: only stages 0 and 1", text)
        self.assertIn("0 of 1 simulated points within", text)


class MergeRepeatsTest(unittest.TestCase):
    def test_the_repeat_with_the_lowest_median_is_kept_with_every_median(self):
        first = [{"name": "a", "status": "ok", "step_s": 0.12, "tag": "a"},
                 {"name": "b", "status": "ok", "step_s": 0.05, "tag": "b"},
                 {"name": "acc", "status": "ok", "step_s": 0.3, "tag": "acc"}]
        second = [{"name": "a", "status": "ok", "step_s": 0.08, "tag": "a-r2"},
                  {"name": "b", "status": "failed", "step_s": 0.0, "tag": "b-r2"}]
        merged = {r["name"]: r for r in merge_repeats([first, second])}
        self.assertEqual(merged["a"]["tag"], "a-r2")
        self.assertEqual(merged["a"]["repeat_steps_s"], [0.12, 0.08])
        self.assertEqual(merged["b"]["tag"], "b")            # a failed repeat never wins
        self.assertEqual(merged["b"]["repeat_steps_s"], [0.05, None])
        self.assertNotIn("repeat_steps_s", merged["acc"])   # not repeated: unchanged
        self.assertEqual([r["name"] for r in merge_repeats([first, second])], ["a", "b", "acc"])

    def test_a_zero_points_profile_is_the_slower_core_of_each_bracket_averaged(self):
        def core(step, fwd, bwd, opt):
            return Summary(step_s=step, walls=[step, step], phases_ms={"forward": fwd, "backward": bwd,
                                                                       "optimizer": opt, "data": 1.0})
        shape = {"backward": [{"seconds": 0.01}, {"seconds": 0.03}]}
        # Before the run the second core is the slower (0.26 s), after it the first (0.30 s).
        r = {"corun": [[core(0.20, 50, 100, 20), core(0.26, 60, 150, 30)],
                       [core(0.30, 70, 170, 40), core(0.22, 50, 110, 20)], []]}
        prof, cv, diff = corun_profile(shape, r, "test")
        self.assertAlmostEqual(prof["forward_s"], 0.065)
        self.assertAlmostEqual(sum(s["seconds"] for s in prof["backward"]), 0.160)
        self.assertAlmostEqual(prof["backward"][1]["seconds"] / prof["backward"][0]["seconds"], 3.0)
        self.assertAlmostEqual(prof["optimizer_s"], 0.035)
        self.assertAlmostEqual(prof["step_overhead_s"], 0.28 - 0.261)
        self.assertAlmostEqual(diff, (0.30 - 0.26) / 0.28)
        self.assertEqual(cv, 0.0)
        self.assertEqual(shape["backward"][0]["seconds"], 0.01)  # the shared split is not touched
        one = corun_profile(shape, {"corun": [[core(0.2, 50, 100, 20)]]}, "test")
        self.assertIsNone(one[2])  # one bracket: no before/after to compare
        self.assertIsNone(corun_profile(shape, {"corun": [[], []]}, "test"))
        self.assertIsNone(corun_profile(shape, {}, "test"))

    def test_every_second_pass_runs_the_grid_backwards(self):
        grid = [("a", 1), ("b", 1), ("c", 1)]
        self.assertEqual(pass_order(grid, 0), grid)
        self.assertEqual(pass_order(grid, 1), [("c", 1), ("b", 1), ("a", 1)])
        self.assertEqual(pass_order(grid, 2), grid)
        self.assertEqual(pass_order(iter(grid), 3), list(reversed(grid)))

    def test_one_pass_is_returned_as_it_is(self):
        only = [{"name": "a", "status": "ok", "step_s": 0.1}]
        self.assertEqual(merge_repeats([only]), only)


class MedianCurveTest(unittest.TestCase):
    def test_each_size_takes_the_median_over_launches(self):
        head = {"world": 2, "progress": "thread", "gap_us": 1000.0}
        launches = [{**head, "points": [[1024, 0.001, 0.0005], [4096, 0.004, 0.001]]},
                    {**head, "points": [[1024, 0.009, 0.0001], [4096, 0.002, 0.003]]},
                    {**head, "points": [[1024, 0.002, 0.0002], [4096, 0.003, 0.002], [16384, 1.0, 1.0]]}]
        c = median_curve(launches)
        self.assertEqual(c["points"], [[1024, 0.002, 0.0002], [4096, 0.003, 0.002]])  # 16384: one launch only
        self.assertEqual((c["world"], c["progress"], c["launches"]), (2, "thread", 3))
        with self.assertRaises(ValueError):
            median_curve([])

    def test_idle_curves_have_one_value_per_point(self):
        launches = [{"world": 4, "points": [[1024, t]]} for t in (0.003, 0.001, 0.002)]
        self.assertEqual(median_curve(launches)["points"], [[1024, 0.002]])

    def test_each_collective_gets_its_own_median(self):
        # Two launches, each with an all-reduce (one without the key, as older files have)
        # and a reduce-scatter curve: the medians never mix the two collectives.
        launches = [{"world": 2, "points": [[1024, 0.004]]},
                    {"world": 2, "collective": "reduce_scatter", "points": [[1024, 0.001]]},
                    {"world": 2, "collective": "allreduce", "points": [[1024, 0.002]]},
                    {"world": 2, "collective": "reduce_scatter", "points": [[1024, 0.003]]}]
        got = median_curves(launches)
        self.assertEqual(len(got), 2)
        self.assertEqual((got[0].get("collective", "allreduce"), got[0]["points"]), ("allreduce", [[1024, 0.003]]))
        self.assertEqual((got[1]["collective"], got[1]["points"], got[1]["launches"]),
                         ("reduce_scatter", [[1024, 0.002]], 2))
        self.assertEqual(median_curves([]), [])


class ContendedGapsTest(unittest.TestCase):
    def test_gaps_are_ascending_distinct_and_default_where_not_given(self):
        self.assertEqual(parse_gaps_us("10000,1000,4000,1000"), [1000.0, 4000.0, 10000.0])
        self.assertEqual(parse_gaps_us(None), [1000.0])
        self.assertEqual(parse_gaps_us("", zero_study.CONTENDED_GAPS_US), [1000.0, 4000.0, 10000.0])
        for bad in ("0", "-5", "1000,x", ","):
            with self.assertRaises(SystemExit, msg=bad):
                parse_gaps_us(bad)

    def test_longer_gaps_time_fewer_steps(self):
        self.assertEqual([contended_steps(g) for g in (1000, 2000, 4000, 10000)], [15, 8, 5, 5])


class StealTest(unittest.TestCase):
    def test_steal_is_the_share_of_all_cpu_time_between_two_readings(self):
        self.assertAlmostEqual(steal_pct((10, 1000), (40, 1200)), 15.0)
        self.assertIsNone(steal_pct(None, (40, 1200)))
        self.assertIsNone(steal_pct((10, 1000), (10, 1000)))


if __name__ == "__main__":
    unittest.main()
