"""tools/recipe_sweep.py against a stand-in vit_train that writes the real
record layout: one row per recipe with the holdout accuracy by epoch, the best,
the time to each target (— where never reached), --holdout passed on, a run
that is not on the holdout refused, and rows of separate sweeps joined with --rows."""
import json
import os
import stat
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "recipe_sweep.py"

# Accuracy after each epoch: 0.80 + 0.03 * epoch, times 10 s apart; --epochs E;
# --lr 9 makes the run "forget" --holdout in its records (split "test").
FAKE = r'''#!/usr/bin/env python3
import json, sys
a = sys.argv[1:]
out = a[a.index("--metrics-out") + 1]
holdout = int(a[a.index("--holdout") + 1])
epochs = int(a[a.index("--epochs") + 1]) if "--epochs" in a else 3
split = "test" if "--lr" in a else "holdout"
ema = "--ema-decay" in a  # the average's accuracy is test_acc; the live weights' 0.01 lower
with open(out, "w") as f:
    accs = [0.80 + 0.03 * e for e in range(1, epochs + 1)]
    for e, acc in enumerate(accs, 1):
        rec = {"event": "eval", "epoch": e, "step": 10 * e, "test_acc": acc, "test_loss": 1.0,
               "images": holdout, "eval_s": 0.1, "elapsed_s": 10.0 * e, "split": split}
        if ema:
            rec.update({"weights": "ema", "live_test_acc": acc - 0.01, "live_test_loss": 1.1})
        f.write(json.dumps(rec) + "\n")
    f.write(json.dumps({"event": "final", "test_acc": accs[-1], "best_test_acc": max(accs), "test_loss": 1.0,
                        "images_per_s": 100.0, "wall_s": 10.0 * epochs + 1, "steps": 10 * epochs,
                        "split": split}) + "\n")
'''


class RecipeSweep(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.tmp = Path(self.dir.name)
        self.fake = self.tmp / "vit_train"
        self.fake.write_text(FAKE)
        self.fake.chmod(self.fake.stat().st_mode | stat.S_IEXEC)

    def tearDown(self):
        self.dir.cleanup()

    def sweep(self, *args):
        return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                              timeout=120)

    def test_rows_and_times(self):
        r = self.sweep("--vit-train", self.fake, "--holdout", 700, "--recipe", "short=--epochs 2",
                       "--recipe", "long=--epochs 4", "--out", self.tmp / "t.md", "--json", self.tmp / "t.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        table = (self.tmp / "t.md").read_text()
        self.assertIn("the last 700 images", table)
        lines = {l.split("|")[1].strip(): l for l in table.splitlines() if l.startswith("| short") or l.startswith("| long")}
        # short: 83, 86 -> 88.5% and 90.5% never reached; long: 83 86 89 92 -> 88.5% at 30 s, 90.5% at 40 s.
        self.assertIn("| 83.00 86.00 |", lines["short"])
        self.assertTrue(lines["short"].rstrip().endswith("| — | — |"), lines["short"])
        self.assertIn("| 92.00 |", lines["long"])
        self.assertTrue(lines["long"].rstrip().endswith("| 30 | 40 |"), lines["long"])
        rows = json.loads((self.tmp / "t.json").read_text())
        self.assertEqual([row["name"] for row in rows], ["short", "long"])

    def test_rows_of_separate_sweeps_join(self):
        for name, epochs in (("a", 2), ("b", 4)):
            r = self.sweep("--vit-train", self.fake, "--recipe", f"{name}=--epochs {epochs}",
                           "--json", self.tmp / f"{name}.json", "--out", self.tmp / f"{name}.md")
            self.assertEqual(r.returncode, 0, r.stderr)
        r = self.sweep("--rows", self.tmp / "a.json", "--rows", self.tmp / "b.json", "--out", self.tmp / "all.md")
        self.assertEqual(r.returncode, 0, r.stderr)
        table = (self.tmp / "all.md").read_text()
        self.assertEqual(sum(1 for l in table.splitlines() if l.startswith("| a ") or l.startswith("| b ")), 2)
        self.assertTrue([l for l in table.splitlines() if l.startswith("| b ")][0].rstrip().endswith("| 30 | 40 |"))

    def test_a_run_with_the_weight_average_shows_both_weights(self):
        r = self.sweep("--vit-train", self.fake, "--recipe", "ema=--epochs 2 --ema-decay 0.999",
                       "--recipe", "plain=--epochs 2", "--out", self.tmp / "e.md", "--json", self.tmp / "e.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        table = (self.tmp / "e.md").read_text()
        ema = [l for l in table.splitlines() if l.startswith("| ema ")][0]
        plain = [l for l in table.splitlines() if l.startswith("| plain ")][0]
        self.assertIn("| EMA: 83.00 86.00; live: 82.00 85.00 |", ema)
        self.assertIn("| 83.00 86.00 |", plain)
        rows = json.loads((self.tmp / "e.json").read_text())
        self.assertEqual([round(a, 6) for a in rows[0]["live_epochs"]], [0.82, 0.85])
        self.assertNotIn("live_epochs", rows[1])

    def test_a_run_not_on_the_holdout_is_refused(self):
        r = self.sweep("--vit-train", self.fake, "--recipe", "bad=--lr 9")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("did not evaluate on the holdout", r.stderr)

    def test_nothing_to_do_is_refused(self):
        r = self.sweep("--out", self.tmp / "x.md")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("nothing to do", r.stderr)


if __name__ == "__main__":
    unittest.main()
