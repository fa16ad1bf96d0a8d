"""Tests of the study driver's metrics reading and skip rules (tools/scaling/study_runner.py).

Run by CTest as scaling:driver (python3 -m unittest); needs no binaries.
"""

import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "scaling"))

from study_runner import Config, Machine, Runner, median_curve, merge_repeats, steal_pct, summarize  # noqa: E402


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


class StealTest(unittest.TestCase):
    def test_steal_is_the_share_of_all_cpu_time_between_two_readings(self):
        self.assertAlmostEqual(steal_pct((10, 1000), (40, 1200)), 15.0)
        self.assertIsNone(steal_pct(None, (40, 1200)))
        self.assertIsNone(steal_pct((10, 1000), (10, 1000)))


if __name__ == "__main__":
    unittest.main()
