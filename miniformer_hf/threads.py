"""How many PyTorch threads a training run uses.

`default_threads` is this process's share of the cores (at most 4). On a quiet 2-core machine two
threads make a step of the seed model about 1.2-1.4x faster than one; on a busy machine the threads
wait for each other and the same two threads make it 1.8x slower (one busy process beside it) to 20x
slower (load 5-10). So a run without ``--threads`` does not trust the count: `ThreadChooser` measures.

At the sixth step, again every ``recheck_every`` steps, and at once when the training steps run on
many threads grow `slowdown_ratio` times slower than they were just after the last choice (another
job has started: waiting 250 steps at 20x the step time would cost minutes), the trainer times a
probe (the forward and backward pass of the current batch, gradients discarded, random state
restored: the probe changes nothing in the run) alternately with `default_threads` and with one
thread, and trains on with the faster count. A given ``--threads N`` pins N and nothing is measured.

The thread count changes the order of floating-point sums, so weights can differ in their last bits
between counts: ``metrics.json`` records the counts chosen (``thread_choices``); ``--threads N`` with
the last of them repeats a run exactly.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

__all__ = ["MAX_DEFAULT_THREADS", "ThreadChooser", "default_threads"]

MAX_DEFAULT_THREADS = 4


def default_threads() -> int:
    """PyTorch threads for a run without ``--threads``: this process's share of the cores, at most 4.

    The share is the cores this process may use divided by the processes that ``torchrun`` or
    ``accelerate launch`` started on this machine (``LOCAL_WORLD_SIZE``), so two processes on two cores
    take one thread each. More than 4 were not measured. Outside such a launch, ``OMP_NUM_THREADS`` set
    to a positive integer is the count (PyTorch's own convention), up to the cores this process may use;
    a launcher sets it to 1 for its processes itself, so there the share applies.
    """
    requested = os.environ.get("OMP_NUM_THREADS", "").strip()
    launched = "LOCAL_WORLD_SIZE" in os.environ
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    try:
        processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        processes = 1
    if requested.isdigit() and int(requested) > 0 and not launched:
        return min(int(requested), available)
    return max(1, min(available // processes, MAX_DEFAULT_THREADS))


class ThreadChooser:
    """Choose between ``many`` threads and one by timing a probe with each.

    ``due(step)`` says whether to measure before training step ``step`` (0-based global step): at
    ``first_step`` (the first steps have warmed up the allocator and the thread pool: one probe at step 1 once
    chose one thread on a quiet machine and kept it for 250 steps) and every ``recheck_every`` steps after.
    ``observe(seconds)`` takes the duration of each training step: while ``many`` threads are in use,
    a median of the last ``window`` steps `slowdown_ratio` times the median of the first ``window``
    after the last choice makes the next step due at once.
    ``choose(probe, set_threads)`` runs ``probe`` once to warm up, then ``rounds`` times with each count,
    alternating (so a change in load or batch length hits both alike), and keeps the count with the
    smaller median time (``many`` on a tie). A first round that differs by ``clear_ratio`` or more
    decides at once: on a heavily loaded machine a probe with ``many`` threads can take 20 times
    longer, and repeating it would cost more than the choice gains. ``choices`` lists
    ``(step, threads)`` for each change of count.
    """

    def __init__(
        self,
        many: int,
        *,
        rounds: int = 3,
        first_step: int = 5,
        recheck_every: int = 250,
        clear_ratio: float = 2.5,
        slowdown_ratio: float = 1.6,
        window: int = 5,
        now: Callable[[], float] = time.perf_counter,
    ):
        if many < 1 or rounds < 1 or recheck_every < 1:
            raise ValueError(f"many={many}, rounds={rounds}, recheck_every={recheck_every}; expected positive values.")
        self.many = many
        self.rounds = rounds
        self.first_step = first_step
        self.recheck_every = recheck_every
        self.clear_ratio = clear_ratio
        self.now = now
        self.threads = many
        self.slowdown_ratio = slowdown_ratio
        self.window = window
        self.choices: list[tuple[int, int]] = []
        self._last_step: int | None = None
        self._step_seconds: list[float] = []  # training steps since the last choice
        self._slowed_down = False

    def observe(self, seconds: float) -> None:
        """Record one training step's duration; a clear slowdown on many threads makes a check due."""
        if self._last_step is None or self.threads == 1:
            return  # one thread cannot be made slower by waiting threads; the periodic check covers a quieter machine
        self._step_seconds.append(seconds)
        if len(self._step_seconds) < 2 * self.window:
            return
        settled = statistics.median(self._step_seconds[: self.window])
        recent = statistics.median(self._step_seconds[-self.window :])
        if recent >= self.slowdown_ratio * settled:
            self._slowed_down = True

    def due(self, step: int) -> bool:
        if self.many == 1:
            return False
        if self._last_step is None:
            return step >= self.first_step
        return self._slowed_down or step - self._last_step >= self.recheck_every

    def choose(self, step: int, probe: Callable[[], None], set_threads: Callable[[int], None]) -> int:
        self._last_step = step
        self._step_seconds.clear()
        self._slowed_down = False
        timings: dict[int, list[float]] = {self.many: [], 1: []}
        set_threads(self.threads)
        probe()  # warm-up, not timed
        for round_index in range(self.rounds):
            order = (self.many, 1) if round_index % 2 == 0 else (1, self.many)
            for count in order:
                set_threads(count)
                started = self.now()
                probe()
                timings[count].append(self.now() - started)
            first_many, first_one = timings[self.many][0], timings[1][0]
            if round_index == 0 and max(first_many, first_one) >= self.clear_ratio * min(first_many, first_one):
                break  # clear at once
        many_seconds, one_seconds = statistics.median(timings[self.many]), statistics.median(timings[1])
        self.threads = self.many if many_seconds <= one_seconds else 1
        set_threads(self.threads)
        if not self.choices or self.choices[-1][1] != self.threads:
            self.choices.append((step, self.threads))
            logger.info(
                "Step %d: %d thread(s) (probe %.1f ms with %d, %.1f ms with 1).",
                step, self.threads, 1000 * many_seconds, self.many, 1000 * one_seconds,
            )  # fmt: skip
        return self.threads


def probe_step(model, inputs: dict) -> Callable[[], None]:
    """A probe for `ThreadChooser`: the forward and backward pass of ``inputs`` without touching the run.

    Gradients come from ``torch.autograd.grad`` (nothing accumulates in ``.grad``) and the random state
    (dropout) is restored afterwards, so training goes on exactly as if the probe had not run.
    """
    import torch

    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]

    def probe() -> None:
        with torch.random.fork_rng(devices=[]):
            loss = model(**inputs).loss
            torch.autograd.grad(loss, parameters, allow_unused=True)

    return probe
