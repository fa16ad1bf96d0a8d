"""tools/plot_curves.py on generated metrics: curves.png and confusion.png are
real PNGs of the expected size, a malformed record is refused in one line
naming the file and line. Exits 77 (CTest: skipped) without matplotlib."""
import json
import struct
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "plot_curves.py"


def png_size(path):
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise AssertionError(f"{path} is not a PNG")
    return struct.unpack(">II", data[16:24])


def write_metrics(path, steps=60, steps_per_epoch=20):
    with open(path, "w") as f:
        f.write(json.dumps({"event": "start", "backend": "cpu"}) + "\n")
        for s in range(1, steps + 1):
            f.write(json.dumps({"event": "train", "step": s, "epoch": (s - 1) // steps_per_epoch + 1,
                                "loss": 2.3 / s ** 0.5, "lr": 1e-3 * min(1, s / 10), "grad_norm": 1.0,
                                "images_per_s": 1000 + s, "elapsed_s": s * 0.1}) + "\n")
            if s % steps_per_epoch == 0:
                f.write(json.dumps({"event": "eval", "epoch": s // steps_per_epoch, "step": s, "images": 100,
                                    "test_acc": 0.5 + s / 200, "test_loss": 1.5 - s / 100, "eval_s": 0.2}) + "\n")
        f.write(json.dumps({"event": "final", "test_acc": 0.8, "test_loss": 0.9}) + "\n")


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


class PlotCurves(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_curves_png_from_metrics(self):
        metrics = self.dir / "metrics.jsonl"
        write_metrics(metrics)
        r = run(metrics)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = self.dir / "curves.png"  # the default: beside the input
        self.assertIn(str(out), r.stdout)
        self.assertEqual(png_size(out), (1210, 825))  # 11 x 7.5 inches at 110 dpi
        self.assertGreater(out.stat().st_size, 20000)  # four panels drawn, not a blank canvas

    def test_confusion_png_from_eval_report(self):
        report = self.dir / "model.eval.json"
        names = ["a", "b", "c"]
        report.write_text(json.dumps({"class_names": names, "test_acc": 0.7,
                                      "confusion": [[5, 1, 0], [2, 3, 0], [0, 0, 4]]}))
        r = run("--confusion", report, "-o", self.dir / "cm.png")
        self.assertEqual(r.returncode, 0, r.stderr)
        w, h = png_size(self.dir / "cm.png")
        self.assertEqual(w, h)

    def test_malformed_record_is_one_line_naming_file_and_line(self):
        metrics = self.dir / "bad.jsonl"
        write_metrics(metrics, steps=3)
        with open(metrics, "a") as f:
            f.write('{"event": "train", "step": \n')
        r = run(metrics)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn(f"{metrics}:", r.stderr)
        self.assertFalse((self.dir / "curves.png").exists())

    def test_missing_file_is_refused(self):
        r = run(self.dir / "nope.jsonl")
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope.jsonl", r.stderr)


if __name__ == "__main__":
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("SKIP: matplotlib is not installed for", sys.executable)
        sys.exit(77)
    sys.exit(0 if unittest.main(exit=False, verbosity=2).result.wasSuccessful() else 1)
