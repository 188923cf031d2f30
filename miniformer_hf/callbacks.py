"""Callbacks of Miniformer's trainer: non-finite checks, the training clock and the time limit.

* `NonFiniteCheck` stops training at the first NaN or infinite gradient or weight
  (`NonFiniteTrainingError` names the step).
* `TrainingClock` measures *training* time: wall time since training began, minus the time spent
  evaluating, plus the training time of the run a ``--resume`` continues (saved in each checkpoint as
  ``training_clock.json``). Checkpoint saving and logging count as training.
* `TrainingClockCallback` evaluates held-out exact match when the training time reaches given marks
  (the training benchmark uses it); `MaxTimeCallback` ends training when it reaches ``max_time``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from .runs import RunError, non_finite_weights

logger = logging.getLogger(__name__)

__all__ = [
    "CLOCK_FILE",
    "MaxTimeCallback",
    "NonFiniteCheck",
    "NonFiniteTrainingError",
    "TrainingClock",
    "TrainingClockCallback",
    "check_training_weights",
]

# Written into each checkpoint folder: the training seconds spent when it was saved.
CLOCK_FILE = "training_clock.json"


# ---------------------------------------------------------------------------------------------
# NaN and infinity
# ---------------------------------------------------------------------------------------------


class NonFiniteTrainingError(RunError):
    """Training met a NaN or infinite loss, gradient or weight; ``step`` is the step it happened in."""

    def __init__(self, step: int, problem: str):
        self.step = step
        self.problem = problem
        super().__init__(f"training stopped at step {step}: {problem}")


def check_training_weights(model, *, step: int, when: str) -> None:
    """Raise `NonFiniteTrainingError` if any weight of ``model`` is NaN or infinite (`runs.non_finite_weights`).

    The parameters are checked, not the ``state_dict``: under FSDP each process checks its own shards
    without gathering them.
    """
    bad = non_finite_weights(model.named_parameters())
    if bad:
        raise NonFiniteTrainingError(step, f"{len(bad)} weight tensor(s) are NaN or infinite {when} (first: {bad[0]})")


class NonFiniteCheck(TrainerCallback):
    """Stop training at the first non-finite gradient (before the optimizer uses it) or weight.

    Gradients are not checked under a mixed-precision gradient scaler, whose overflows are expected
    and skipped by design. The loss is checked in `AtomicCheckpointSeq2SeqTrainer.training_step`.
    """

    def __init__(self, check_gradients: bool = True):
        self.check_gradients = check_gradients

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.check_gradients and model is not None:
            bad = non_finite_weights((name, p.grad) for name, p in model.named_parameters())
            if bad:
                raise NonFiniteTrainingError(
                    state.global_step + 1, f"{len(bad)} gradient tensor(s) are NaN or infinite (first: {bad[0]})"
                )

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            check_training_weights(model, step=state.global_step, when="after the optimizer step")


# ---------------------------------------------------------------------------------------------
# Training time
# ---------------------------------------------------------------------------------------------


class TrainingClock(TrainerCallback):
    """Seconds of training: wall time from ``on_train_begin`` to ``on_train_end``, minus `paused` intervals
    (evaluations), plus ``earlier_seconds`` (the training time of the checkpoint a resumed run starts from)."""

    def __init__(self, now: Callable[[], float] = time.perf_counter):
        self.now = now
        self.earlier_seconds = 0.0
        self._started: float | None = None
        self._paused_seconds = 0.0
        self._paused_since: float | None = None
        self._ended: float | None = None

    def seconds(self) -> float:
        if self._started is None:
            return self.earlier_seconds
        current = self._ended if self._ended is not None else self._paused_since
        current = self.now() if current is None else current
        return self.earlier_seconds + current - self._started - self._paused_seconds

    @contextlib.contextmanager
    def paused(self):
        """Time spent inside this block is not training time (nested blocks count once)."""
        if self._paused_since is not None or self._started is None or self._ended is not None:
            yield
            return
        self._paused_since = self.now()
        try:
            yield
        finally:
            self._paused_seconds += self.now() - self._paused_since
            self._paused_since = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._started, self._paused_seconds, self._ended = self.now(), 0.0, None

    def on_train_end(self, args, state, control, **kwargs):
        self._ended = self.now()

    def save(self, checkpoint: str | os.PathLike) -> None:
        with open(os.path.join(checkpoint, CLOCK_FILE), "w", encoding="utf-8") as handle:
            json.dump({"training_seconds": self.seconds()}, handle)

    def restore(self, checkpoint: str | os.PathLike) -> None:
        """Continue from the training time saved in ``checkpoint`` (0 if it has none)."""
        self.earlier_seconds = saved_training_seconds(checkpoint) or 0.0


def saved_training_seconds(checkpoint: str | os.PathLike) -> float | None:
    """The training seconds saved in a checkpoint folder, or None (an older checkpoint has none)."""
    path = os.path.join(checkpoint, CLOCK_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return float(json.load(handle)["training_seconds"])


class TrainingClockCallback(TrainerCallback):
    """Evaluate ``evaluate_fn(model) -> dict`` when the training time reaches each of ``marks_seconds``.

    The time is a `TrainingClock`: its own (for any `Seq2SeqTrainer`), or the trainer's after
    `use_clock` (`TransformerTrainer` does this); these evaluations are paused on it too. Results go to ``self.results`` (a list of dicts with
    ``seconds``, ``training_seconds``, ``step`` and the metrics) and, if ``path`` is given, to a JSON file
    rewritten after each mark.
    """

    def __init__(self, marks_seconds: Sequence[float], evaluate_fn: Callable[[Any], Mapping[str, float]], path=None):
        self.marks = sorted(float(mark) for mark in marks_seconds)
        self.evaluate_fn = evaluate_fn
        self.path = path
        self.results: list[dict[str, float]] = []
        self.clock = TrainingClock()
        self._own_clock = True

    def use_clock(self, clock: TrainingClock) -> None:
        self.clock, self._own_clock = clock, False

    def training_seconds(self) -> float:
        return self.clock.seconds()

    def on_train_begin(self, args, state, control, **kwargs):
        if self._own_clock:
            self.clock.on_train_begin(args, state, control)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        while self.marks and self.training_seconds() >= self.marks[0]:
            mark = self.marks.pop(0)
            measured = self.training_seconds()
            with self.clock.paused():
                metrics = dict(self.evaluate_fn(model))
            self.results.append({"seconds": mark, "training_seconds": measured, "step": state.global_step, **metrics})
            logger.info("After %.0f s of training (step %d): %s", mark, state.global_step, metrics)
            if self.path is not None and args.should_save:
                with open(self.path, "w", encoding="utf-8") as handle:
                    json.dump(self.results, handle, indent=2)


class MaxTimeCallback(TrainerCallback):
    """End training at the first optimizer step taken after ``max_time`` seconds of training (``clock``).

    The clock is read right after the optimizer step, before the learning-rate scheduler steps: a
    schedule sized to the same limit (`trainer.time_budget_schedule`) then reads a time past it too, so
    the last logged learning rate is exactly the schedule's end value. The last step is saved,
    evaluated and logged as the library does at ``max_steps``, so the run finishes exactly like one that
    ran out of steps. ``stopped_by_time`` tells which happened.
    """

    def __init__(self, max_time: float, clock: TrainingClock):
        self.max_time = float(max_time)
        self.clock = clock
        self.stopped_by_time = False
        self._reached = False

    def on_optimizer_step(self, args, state, control, **kwargs):
        self._reached = self._reached or self.clock.seconds() >= self.max_time

    def on_step_end(self, args, state, control, **kwargs):
        if not self._reached or control.should_training_stop:
            return control
        self.stopped_by_time = True
        control.should_training_stop = True
        control.should_log = True  # the learning rate at the limit goes into log_history
        if args.eval_strategy == IntervalStrategy.STEPS:
            control.should_evaluate = True
        if args.save_strategy == SaveStrategy.STEPS:
            control.should_save = True
        logger.info("Training time limit of %.0f s reached at step %d.", self.max_time, state.global_step)
        return control
