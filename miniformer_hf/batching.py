"""Batches by token count, as in §5.1 of the paper: "Sentence pairs were batched together by approximate
sequence length. Each training batch contained a set of sentence pairs containing approximately 25000
source tokens and 25000 target tokens."

`TokenBatchSampler` sorts the examples by length (ties broken at random, anew each epoch), cuts the
sorted list into batches whose padded size, ``examples × longest side``, stays within
``tokens_per_batch``, and shuffles the order of the batches. Short sentences therefore come many to a
batch and long ones few, every batch costs about the same, and little compute goes to padding.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

__all__ = ["TokenBatchSampler", "token_batches"]


def token_batches(lengths: Sequence[int], tokens_per_batch: int, seed: int = 0) -> list[list[int]]:
    """Index batches of similar-length examples, each at most ``tokens_per_batch`` padded tokens.

    ``lengths[i]`` is the longer of example i's source and target (in tokens). An example longer than
    ``tokens_per_batch`` on its own gets a batch of its own. The result depends only on the arguments.
    """
    if tokens_per_batch < 1:
        raise ValueError(f"tokens_per_batch={tokens_per_batch}; expected a positive number of tokens, e.g. 25000.")
    rng = random.Random(seed)
    tiebreak = [rng.random() for _ in lengths]
    order = sorted(range(len(lengths)), key=lambda index: (lengths[index], tiebreak[index]))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        candidate = max(longest, lengths[index])
        if current and (len(current) + 1) * candidate > tokens_per_batch:
            batches.append(current)
            current, candidate = [], lengths[index]
        current.append(index)
        longest = candidate
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


class TokenBatchSampler(Sampler[list[int]]):
    """A batch sampler (``DataLoader(dataset, batch_sampler=...)``) of `token_batches`, reshuffled each epoch.

    The number of batches is the same every epoch (it depends only on the sorted lengths), so the
    trainer's epoch and step counts hold. ``set_epoch`` is called by the trainer before each epoch.
    """

    def __init__(self, lengths: Sequence[int], tokens_per_batch: int, seed: int = 0):
        self.lengths = list(lengths)
        self.tokens_per_batch = tokens_per_batch
        self.seed = seed
        self.epoch = 0
        self._count = len(token_batches(self.lengths, tokens_per_batch, seed))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        return iter(token_batches(self.lengths, self.tokens_per_batch, self.seed + self.epoch))

    def __len__(self) -> int:
        return self._count
