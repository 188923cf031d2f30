"""Tests for scripts/benchmark_threads.py, light ones: the plan, the speed read from a run folder, the
summary and verdict, the busy processes, and a dry run. The benchmark itself runs on a quiet machine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import SCRIPTS_DIR, load_script

SCRIPT = SCRIPTS_DIR / "benchmark_threads.py"


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmark_threads")


def test_the_plan_runs_every_configuration_each_repeat_in_a_rotating_order(bench):
    order = bench.plan(["quiet", "busy1"], ["default", "1"], repeats=2)
    assert order == [
        (0, "quiet", "default"), (0, "quiet", "1"), (0, "busy1", "default"), (0, "busy1", "1"),
        (1, "quiet", "1"), (1, "quiet", "default"), (1, "busy1", "1"), (1, "busy1", "default"),
    ]  # fmt: skip
    assert [bench.busy_count(name) for name in ("quiet", "busy", "busy1", "busy4")] == [0, 1, 1, 4]


def test_the_command_is_the_users_with_threads_only_when_asked(bench, tmp_path):
    default = bench.train_command(tmp_path / "run", 150, "default", ["--task", "copy"])
    assert default[1:4] == ["-m", "miniformer_hf.cli", "train"] and "--threads" not in default
    assert default[default.index("--eval-steps") + 1] == "151" and default[-2:] == ["--task", "copy"]
    one = bench.train_command(tmp_path / "run", 150, "1", [])
    assert one[one.index("--threads") + 1] == "1"
    env = bench.run_environment(keep_thread_env=False)
    assert "OMP_NUM_THREADS" not in env and env["PYTHONPATH"].split(":")[0] == str(SCRIPT.parents[1])


def test_training_speed_leaves_out_evaluation_during_training(bench, tmp_path):
    history = [{"loss": 3.0, "step": 50}, {"eval_runtime": 4.0, "step": 100},
               {"train_runtime": 24.0, "train_loss": 2.0, "step": 100}, {"test_runtime": 9.0, "step": 100}]  # fmt: skip
    (tmp_path / "log_history.json").write_text(json.dumps(history))
    (tmp_path / "metrics.json").write_text(json.dumps({"threads": 2, "training_wall_seconds": 40.0, "max_steps": 100}))
    speed = bench.training_speed(tmp_path)
    assert (speed["steps"], speed["train_seconds"], speed["steps_per_second"]) == (100, 20.0, 5.0)
    assert speed["threads_recorded"] == 2 and "train_runtime" in speed["source"]
    (tmp_path / "log_history.json").unlink()  # no log: the metrics' clock, which says it includes set-up
    speed = bench.training_speed(tmp_path)
    assert speed["steps_per_second"] == 2.5 and "with set-up" in speed["source"]


def test_summary_and_verdict_compare_the_default_with_the_best_setting(bench):
    runs = [{"condition": c, "threads": t, "steps_per_second": v} for c, t, v in [
        ("quiet", "default", 6.0), ("quiet", "default", 6.4), ("quiet", "1", 5.0), ("quiet", "1", 5.2),
        ("busy1", "default", 2.0), ("busy1", "default", 2.2), ("busy1", "1", 3.6), ("busy1", "1", 3.6)]]  # fmt: skip
    rows = bench.summarize(runs, ["quiet", "busy1"], ["default", "1"])
    by = {(row["condition"], row["threads"]): row for row in rows}
    assert by["quiet", "default"]["median_steps_per_second"] == 6.2 and by["quiet", "default"]["slowdown_vs_best"] == 1.0
    assert by["busy1", "default"]["slowdown_vs_best"] == round(3.6 / 2.1, 3)
    verdicts = bench.verdicts(rows)
    assert verdicts[0].startswith("quiet: the default is 1.00x") and "meets" in verdicts[0]
    assert verdicts[1].startswith("busy1: the default is 1.71x") and "MISSES" in verdicts[1]
    assert "busy1" in bench.table(rows)


def test_busy_processes_spin_and_stop(bench):
    processes = bench.start_busy(1, pin=True)
    try:
        assert len(processes) == 1 and processes[0].poll() is None
    finally:
        bench.stop_busy(processes)
    assert processes[0].poll() is not None


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    output = tmp_path / "threads.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--steps", "10", "--repeats", "2", "--conditions", "quiet", "busy2",
         "--json", str(output), "--", "--task", "copy"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "8 runs" in completed.stdout and "busy2" in completed.stdout and "--task copy" in completed.stdout
    assert completed.stdout.startswith("Machine: ") and not output.exists()
    bad = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--conditions", "loud"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "expected 'quiet' or 'busyN'" in bad.stderr
