"""Tests for miniformer_hf.callbacks: non-finite checks, the training clock (a fake clock: no sleeping)
and the time limit."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from miniformer_hf import MiniformerForConditionalGeneration
from miniformer_hf.callbacks import MaxTimeCallback, NonFiniteTrainingError, TrainingClock, TrainingClockCallback
from miniformer_hf.trainer import TransformerTrainer
from test_trainer import random_pairs, tiny_model


class _PoisonAtStep(TrainerCallback):
    """Turn one weight into NaN at the end of ``step`` (as an exploding update would)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))


def test_non_finite_weights_stop_training_at_their_step_and_keep_the_last_good_checkpoint(tmp_path):
    model = tiny_model(1000)
    trainer = TransformerTrainer(
        model, output_dir=tmp_path, learning_rate=1e-3, batch_size=8, schedule="constant",
        save_strategy="steps", save_steps=2, callbacks=[_PoisonAtStep(3)],
    )  # fmt: skip
    with pytest.raises(NonFiniteTrainingError) as raised:
        trainer.train(random_pairs(48), max_steps=6)
    assert raised.value.step == 3 and "step 3" in str(raised.value)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-2"]
    saved = MiniformerForConditionalGeneration.from_pretrained(tmp_path / "checkpoint-2")
    assert all(torch.isfinite(p).all() for p in saved.parameters())


def test_a_non_finite_loss_stops_training_at_once(tmp_path):
    model = tiny_model(1000)
    trainer = TransformerTrainer(model, output_dir=tmp_path, learning_rate=float("inf"), batch_size=8)
    with pytest.raises(NonFiniteTrainingError) as raised:
        trainer.train(random_pairs(48), max_steps=5)
    assert raised.value.step <= 2  # the first update makes every weight NaN; it is caught there




# ---------------------------------------------------------------------------------------------
# The training clock and the time limit (a fake clock: deterministic, no sleeping)
# ---------------------------------------------------------------------------------------------


class _FakeTime:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_training_clock_excludes_paused_time_and_continues_saved_time(tmp_path):
    fake = _FakeTime()
    clock = TrainingClock(now=fake)
    assert clock.seconds() == 0.0  # not started
    clock.on_train_begin(None, None, None)
    fake.now += 10
    with clock.paused():
        fake.now += 5
        with clock.paused():  # nested pauses count once
            fake.now += 1
        assert clock.seconds() == 10.0  # frozen while paused
    fake.now += 2
    assert clock.seconds() == 12.0
    clock.on_train_end(None, None, None)
    fake.now += 100  # after training ends (final evaluation, saving): not training
    with clock.paused():  # the final evaluation
        fake.now += 7
    assert clock.seconds() == 12.0
    clock.save(tmp_path)
    resumed = TrainingClock(now=fake)
    resumed.restore(tmp_path)
    resumed.on_train_begin(None, None, None)
    fake.now += 3
    assert resumed.seconds() == 15.0
    empty = tmp_path / "older"
    empty.mkdir()
    resumed.restore(empty)  # a checkpoint written before the clock existed: from zero
    assert resumed.earlier_seconds == 0.0


def test_max_time_callback_stops_saves_evaluates_and_logs_at_the_limit(tmp_path):
    fake = _FakeTime()
    clock = TrainingClock(now=fake)
    clock.on_train_begin(None, None, None)
    arguments = TrainingArguments(output_dir=str(tmp_path), eval_strategy="steps", save_strategy="steps", report_to="none")
    callback = MaxTimeCallback(30.0, clock)
    state, control = TrainerState(global_step=7), TrainerControl()
    fake.now += 29.9
    callback.on_optimizer_step(arguments, state, control)
    fake.now += 0.2  # the limit passes between the optimizer step and the end of the step: next step then
    callback.on_step_end(arguments, state, control)
    assert not control.should_training_stop and not callback.stopped_by_time
    callback.on_optimizer_step(arguments, state, control)
    callback.on_step_end(arguments, state, control)
    assert control.should_training_stop and control.should_save and control.should_evaluate and control.should_log
    assert callback.stopped_by_time
    finished = TrainerControl(should_training_stop=True)  # max_steps came first: not the time limit's stop
    other = MaxTimeCallback(30.0, clock)
    other.on_optimizer_step(arguments, state, finished)
    other.on_step_end(arguments, state, finished)
    assert not other.stopped_by_time


def test_training_clock_callback_evaluates_at_its_marks_on_its_own_clock():
    fake = _FakeTime()
    seen = []
    callback = TrainingClockCallback([2.0, 1.0], lambda model: seen.append(fake.now) or {"exact_match": 0.5})
    callback.clock = TrainingClock(now=fake)
    arguments = TrainingArguments(output_dir="unused", report_to="none")
    callback.on_train_begin(arguments, TrainerState(), TrainerControl())
    fake.now += 1.5
    callback.on_step_end(arguments, TrainerState(global_step=3), TrainerControl())
    assert [result["seconds"] for result in callback.results] == [1.0] and callback.results[0]["step"] == 3
    fake.now += 1.0
    callback.on_step_end(arguments, TrainerState(global_step=6), TrainerControl())
    assert [result["seconds"] for result in callback.results] == [1.0, 2.0]
