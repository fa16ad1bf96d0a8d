"""A model exported by vit_train loads into plain PyTorch (tools/vit_torch.py,
timm's module tree and names, strict=True) and gives the probabilities
vit_predict gives on the same PNG, for class-token and mean pooling.
Usage: test_vit_torch.py VIT_TRAIN VIT_PREDICT. Exits 77 (skipped) without torch."""
import json
import random
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VIT_TRAIN, VIT_PREDICT = sys.argv[1:3] if len(sys.argv) >= 3 else ("", "")


def write_png(path, width, height, rgb):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\x00" + rgb[y * width * 3:(y + 1) * width * 3] for y in range(height))
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


class VitTorch(unittest.TestCase):
    def check_pooling(self, pooling):
        import torch
        sys.path.insert(0, str(ROOT / "tools"))
        import vit_torch
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            subprocess.run([VIT_TRAIN, "--dataset", "synthetic", "--synthetic-train", "256", "--synthetic-test", "64",
                            "--synthetic-image-size", "16", "--image-size", "16", "--patch-size", "4", "--dim", "32",
                            "--depth", "2", "--heads", "2", "--mlp-dim", "64", "--train-batch-size", "64",
                            "--epochs", "1", "--pooling", pooling, "--device", "cpu", "--threads", "1",
                            "--export-model", str(tmp / "model")], check=True, capture_output=True, timeout=300)
            rng = random.Random(7)
            pixels = bytes(rng.randrange(256) for _ in range(16 * 16 * 3))
            write_png(tmp / "x.png", 16, 16, pixels)
            r = subprocess.run([VIT_PREDICT, str(tmp / "model" / "model.safetensors"), str(tmp / "x.png"),
                                "--json", "-k", "10", "--threads", "1"], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            ours = {t["index"]: t["probability"] for t in json.loads(r.stdout)["top"]}

            model = vit_torch.load(tmp / "model" / "model.json")  # strict: every timm name, no extra
            image = torch.tensor(list(pixels), dtype=torch.uint8).view(16, 16, 3).permute(2, 0, 1).unsqueeze(0)
            with torch.no_grad():
                probs = model(vit_torch.normalize(image, model.card)).double().softmax(-1)[0]
            self.assertEqual(len(ours), 10)
            for k, p in ours.items():
                self.assertAlmostEqual(p, probs[k].item(), delta=2e-5, msg=f"class {k}")

    def test_class_token_pooling(self):
        self.check_pooling("cls")

    def test_mean_pooling(self):
        self.check_pooling("mean")


if __name__ == "__main__":
    try:
        import torch  # noqa: F401
    except ImportError:
        print("SKIP: python3-torch is not installed for", sys.executable)
        sys.exit(77)
    sys.argv[1:] = sys.argv[3:]
    sys.exit(0 if unittest.main(exit=False, verbosity=2).result.wasSuccessful() else 1)
