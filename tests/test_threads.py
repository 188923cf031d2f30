"""Tests for miniformer_hf.threads: the default share of the cores, the chooser (a fake clock and fake
probes: deterministic), the probe leaving training untouched, and --threads N pinning N."""

from __future__ import annotations

import os

import pytest
import torch

from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration, runs
from miniformer_hf.threads import MAX_DEFAULT_THREADS, ThreadChooser, default_threads, probe_step


class _FakeMachine:
    """A clock and a probe whose duration depends on the thread count set: ``seconds[count]``."""

    def __init__(self, seconds: dict[int, float]):
        self.seconds = seconds
        self.now = 0.0
        self.threads = None
        self.calls: list[int] = []

    def clock(self) -> float:
        return self.now

    def set_threads(self, count: int) -> None:
        self.threads = count

    def probe(self) -> None:
        self.calls.append(self.threads)
        self.now += self.seconds[self.threads]


def test_default_threads_share_the_cores_among_launched_processes(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert default_threads() == MAX_DEFAULT_THREADS  # 8 cores, capped
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_threads() == 2  # accelerate launch / torchrun with 4 local processes
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert default_threads() == 1  # never zero
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert default_threads() == 1  # two processes on two cores: one thread each
    assert runs.default_threads is default_threads  # still importable from runs


@pytest.mark.parametrize(
    "value, launched, expected",
    [("1", None, 1), ("3", None, 3), ("64", None, 8), ("0", None, 4), ("two", None, 4), ("", None, 4), ("1", "2", 4)],
)
def test_default_threads_honour_omp_num_threads_outside_a_launch(monkeypatch, value, launched, expected):
    # OMP_NUM_THREADS=1 (the test suite's setting) means one thread; a launcher's own 1 does not override the share.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    if launched is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", launched)
    assert default_threads() == expected


def test_chooser_keeps_many_threads_on_a_quiet_machine_and_one_on_a_busy_one():
    quiet = _FakeMachine({2: 0.10, 1: 0.14})
    chooser = ThreadChooser(2, rounds=3, now=quiet.clock)
    assert not chooser.due(4) and chooser.due(5)  # the first steps warm up first
    assert chooser.choose(1, quiet.probe, quiet.set_threads) == 2 and quiet.threads == 2
    assert quiet.calls == [2, 2, 1, 1, 2, 2, 1]  # one warm-up, then alternating rounds
    busy = _FakeMachine({2: 0.20, 1: 0.15})
    chooser = ThreadChooser(2, rounds=3, now=busy.clock)
    assert chooser.choose(1, busy.probe, busy.set_threads) == 1 and busy.threads == 1
    assert chooser.choices == [(1, 1)] and len(busy.calls) == 7


def test_a_clear_first_round_decides_at_once():
    crawling = _FakeMachine({2: 3.0, 1: 0.15})  # load 5-10: two threads wait for each other
    chooser = ThreadChooser(2, rounds=3, now=crawling.clock)
    assert chooser.choose(1, crawling.probe, crawling.set_threads) == 1
    assert crawling.calls == [2, 2, 1]  # warm-up, one round: no more slow probes
    crawling.calls.clear()
    chooser.choose(251, crawling.probe, crawling.set_threads)  # the recheck warms up with the current count
    assert crawling.calls == [1, 2, 1]


def test_chooser_rechecks_as_the_load_changes():
    machine = _FakeMachine({2: 0.30, 1: 0.15})
    chooser = ThreadChooser(2, rounds=2, recheck_every=100, now=machine.clock)
    chooser.choose(1, machine.probe, machine.set_threads)
    assert [step for step in range(2, 300) if chooser.due(step)][:1] == [101]
    machine.seconds = {2: 0.10, 1: 0.15}  # the other job has finished
    chooser.choose(101, machine.probe, machine.set_threads)
    machine.seconds = {2: 0.11, 1: 0.15}  # no change of mind: not recorded again
    chooser.choose(201, machine.probe, machine.set_threads)
    assert chooser.choices == [(1, 1), (101, 2)] and machine.threads == 2


def test_a_slowdown_on_many_threads_makes_a_check_due_at_once():
    machine = _FakeMachine({2: 0.10, 1: 0.14})
    chooser = ThreadChooser(2, rounds=1, recheck_every=250, window=3, now=machine.clock)
    chooser.choose(1, machine.probe, machine.set_threads)
    for seconds in (0.10, 0.11, 0.10, 0.12, 0.10):  # ordinary jitter (batch lengths)
        chooser.observe(seconds)
    assert not chooser.due(7)
    for seconds in (0.30, 0.35, 0.32):  # another job started: the steps are three times slower
        chooser.observe(seconds)
    assert chooser.due(9)  # long before step 251
    machine.seconds = {2: 0.40, 1: 0.15}
    assert chooser.choose(9, machine.probe, machine.set_threads) == 1 and not chooser.due(10)
    for seconds in (0.15, 0.15, 0.15, 0.90, 0.90, 0.90):  # on one thread, slow steps do not trigger probes
        chooser.observe(seconds)
    assert not chooser.due(16) and chooser.due(259)


def test_chooser_with_one_thread_never_measures_and_keeps_a_tie_on_many():
    assert not any(ThreadChooser(1).due(step) for step in range(1000))
    machine = _FakeMachine({3: 0.2, 1: 0.2})
    assert ThreadChooser(3, now=machine.clock).choose(1, machine.probe, machine.set_threads) == 3
    with pytest.raises(ValueError):
        ThreadChooser(0)


def test_the_probe_changes_neither_gradients_nor_the_random_stream():
    torch.manual_seed(0)
    model = MiniformerForConditionalGeneration(MiniformerConfig(vocab_size=30, d_model=16, n_heads=2, n_layers=1, d_ff=32))
    model.train()
    inputs = {"input_ids": torch.randint(4, 30, (4, 6)), "labels": torch.randint(4, 30, (4, 5))}
    state = torch.random.get_rng_state()
    probe_step(model, inputs)()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(parameter.grad is None for parameter in model.parameters())


def test_threads_given_pin_the_count_and_are_recorded(tmp_path):
    from miniformer_hf.training import run_training

    before = torch.get_num_threads()
    try:
        result = run_training(
            task="copy", size="tiny", num_train=100, max_steps=3, batch_size=16, eval_steps=3, eval_samples=4,
            threads=1, no_visualize=True, quiet=True, output_dir=str(tmp_path / "one"),
        )  # fmt: skip
        assert torch.get_num_threads() == 1
        assert result.metrics["threads"] == 1 and "thread_choices" not in result.metrics
    finally:
        torch.set_num_threads(before)
