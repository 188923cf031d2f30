"""The loss twin against F.cross_entropy, forward + backward, at the main job's and the tiny benchmark's shapes.

    python scripts/benchmark_loss.py

Decides ``kernels_miniformer.FAST_LOSS_MIN_VOCAB``: the vocabulary from which ``SoftmaxCrossEntropy`` (no (N, V)
log-probabilities) is faster than ``F.cross_entropy(..., label_smoothing=0.1, reduction="sum")``. One thread; three
rounds per shape, each the mean of 300 calls after 20 warm-up calls. Run it on a quiet machine.
"""

import time

import torch
from torch.nn import functional as F

from miniformer_hf.kernels_miniformer import SoftmaxCrossEntropy

SHAPES = [(1152, 48), (1024, 256), (1024, 512), (1024, 1000)]  # (rows, vocabulary): main job ... tiny benchmark


def microseconds(loss_fn, logits, labels, reps=300) -> float:
    for _ in range(20):
        loss_fn(logits, labels)
    start = time.perf_counter()
    for _ in range(reps):
        loss_fn(logits, labels)
    return (time.perf_counter() - start) / reps * 1e6


def plain(logits, labels):
    x = logits.detach().requires_grad_()
    F.cross_entropy(x, labels, ignore_index=-100, label_smoothing=0.1, reduction="sum").backward()


def twin(logits, labels):
    x = logits.detach().requires_grad_()
    SoftmaxCrossEntropy.apply(x, labels, 0.1).backward()


def main() -> None:
    torch.set_num_threads(1)
    for rows, vocab in SHAPES:
        logits, labels = torch.randn(rows, vocab), torch.randint(0, vocab, (rows,))
        rounds = [(microseconds(plain, logits, labels), microseconds(twin, logits, labels)) for _ in range(3)]
        print(f"{rows} x {vocab}: " + ", ".join(f"plain {p:.0f} us / twin {t:.0f} us" for p, t in rounds))


if __name__ == "__main__":
    main()
