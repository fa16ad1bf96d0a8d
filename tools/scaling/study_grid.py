"""study_grid.py — which configurations the scaling study runs.

Two grids:
  cpu_grid()   the default: a small ViT on whatever ranks the machine has
               (CPU ranks 1, 2, and oversubscription to 4 on a 2-core box,
               or the GPUs with NCCL), fixed warm-up + timed steps per run;
  paper_grid() the paper's own: ViT-B/16 at 224 on CIFAR, AdamW lr 1e-4,
               5 epochs, average epoch time as the figure.
Each entry is (Config, global batch that must divide, or None). Worlds beyond
what the machine allows, and batches that do not divide, stay in the grid on
purpose: the study records why they were skipped.
"""

from __future__ import annotations

from study_runner import Config

# The small model of the CPU study: CIFAR-shaped input, patch 8 (17 tokens),
# width 256, 4 blocks — 2.2 M parameters, so that the gradient all-reduce is a
# visible share of a step at small batches, as it was for ViT-B/16 on T4s.
SMALL_MODEL = ["--model", "vit-cpu", "--image-size", "32", "--patch-size", "8", "--dim", "256", "--depth", "4",
               "--heads", "4", "--mlp-dim", "512"]
PAPER_MODEL = ["--model", "vit-b16-224"]


def powers_of_two_upto(n: int) -> list[int]:
    w, out = 1, []
    while w <= n:
        out.append(w)
        w *= 2
    return out


def cpu_grid(max_ranks: int, allowed: int) -> list[tuple[Config, int | None]]:
    worlds = powers_of_two_upto(allowed)
    beyond = worlds[-1] * 2                  # one more than allowed: recorded as skipped
    w = max_ranks if max_ranks >= 2 else min(2, allowed)  # the fixed world size of the sweeps
    g: list[tuple[Config, int | None]] = []
    for ds in ("cifar10", "cifar100"):
        tag = "c10" if ds == "cifar10" else "c100"
        for n in sorted(set(worlds + [3, beyond])):
            g.append((Config("strong", f"strong-{tag}-w{n}", ds, n, max(1, 64 // n)), 64))
    for n in worlds + [beyond]:
        g.append((Config("weak", f"weak-w{n}", "cifar10", n, 32), None))
    # 1 rank and w ranks back to back at each micro-batch, so that a drift in
    # the machine's load touches both sides of each comparison alike.
    for m in (8, 16, 32, 64, 128):
        for n in sorted({1, w}):
            g.append((Config("batch", f"batch-w{n}-m{m}", "cifar10", n, m), None))
    for k in (1, 2, 4, 8):
        g.append((Config("accum", f"accum-w{w}-k{k}", "cifar10", w, 16, accum=k), None))
    # With overlap on, CPU ranks also try the polling progress thread, which
    # sleeps between tests instead of busy-waiting on the core that computes.
    for overlap in (True, False):
        for elems in (65_536, 524_288, 25_000_000):
            on = "on" if overlap else "off"
            for progress in ("thread", "polling") if overlap else ("thread",):
                suffix = "" if progress == "thread" else f"-{progress}"
                g.append((Config("comm", f"comm-w{w}-{on}-b{elems}{suffix}", "cifar10", w, 16, overlap=overlap,
                                 bucket_elems=elems, mpi_progress=progress), None))
    # Learning-rate handling as the global batch grows with the world size: the
    # paper's fixed LR, and linear scaling with warm-up. Whole epochs, evaluated
    # after each, for accuracy beside speed and time to a target accuracy, on a
    # synthetic set hard enough not to saturate in a few CPU-minutes.
    base_lr = 5e-4
    g.append((Config("accuracy", "acc-w1-lr-base", "synthetic-hard", 1, 32, lr=base_lr, warmup_epochs=0.5, epochs=6,
                     note="global batch 32, lr 5e-4"), None))
    g.append((Config("accuracy", f"acc-w{w}-lr-fixed", "synthetic-hard", w, 32, lr=base_lr, warmup_epochs=0.5, epochs=6,
                     note=f"global batch {32 * w}, lr 5e-4 (fixed, as the paper)"), None))
    g.append((Config("accuracy", f"acc-w{w}-lr-linear", "synthetic-hard", w, 32, lr=base_lr * w, warmup_epochs=0.5,
                     epochs=6, note=f"global batch {32 * w}, lr {base_lr * w:g} (linear scaling, 0.5 epoch warm-up)"),
              None))
    return g


def paper_grid(allowed: int, epochs: int) -> list[tuple[Config, int | None]]:
    worlds = [n for n in (1, 2, 4, 8) if n <= max(allowed, 1)] + [n for n in (1, 2, 4, 8) if n > allowed]
    g: list[tuple[Config, int | None]] = []
    lr = 1e-4
    for ds in ("cifar10", "cifar100"):
        tag = "c10" if ds == "cifar10" else "c100"
        for n in worlds:
            g.append((Config("paper-strong", f"paper-strong-{tag}-w{n}", ds, n, 64, lr=lr, warmup_steps=0,
                             epochs=epochs, note="micro-batch 64, lr 1e-4 fixed (the paper)"), None))
            if n > 1:
                g.append((Config("paper-strong-lr", f"paper-strong-lr-{tag}-w{n}", ds, n, 64, lr=lr * n,
                                 warmup_epochs=1.0, epochs=epochs,
                                 note=f"linear LR scaling: lr {lr * n:g}, 1 epoch warm-up"), None))
    for n in worlds:
        # 10% of CIFAR-10's 50,000 training images per rank.
        g.append((Config("paper-weak", f"paper-weak-w{n}", "cifar10", n, 64, lr=lr, warmup_steps=0, epochs=epochs,
                         train_subset=5000 * n, note="10% of the training set per rank"), None))
    for n in (1, 2):
        for m in (16, 32, 64, 128, 256):
            g.append((Config("paper-batch", f"paper-batch-w{n}-m{m}", "cifar10", n, m, lr=lr, warmup_steps=0,
                             epochs=epochs), None))
    for k in (1, 2, 4):
        g.append((Config("paper-accum", f"paper-accum-w2-k{k}", "cifar10", 2, 64, accum=k, lr=lr, warmup_steps=0,
                         epochs=epochs), None))
    return g
