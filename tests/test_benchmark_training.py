"""Tests for scripts/benchmark_training.py's --max-time mode: its arguments refused before any run, and one short
real run whose figures come from the run folder's metrics.json. The benchmark itself runs on a quiet machine."""

from __future__ import annotations

import json

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmark_training")


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--max-time"], "expected at least one argument"),
        (["--max-time", ""], "--max-time is empty"),
        (["--max-time", "0s"], "--max-time 0s is not a positive finite duration"),
        (["--max-time=-5m"], "--max-time -5m is not a duration"),
        (["--max-time", "nan"], "--max-time nan is not a positive finite duration"),
        (["--max-time", "inf"], "--max-time inf is not a positive finite duration"),
        (["--max-time", "ninety"], "--max-time ninety is not a duration"),
        (["--max-time", "60s", "--seeds", "-1"], "--seed -1 is negative"),
        (["--max-time", "60s", "--seeds", "1.5"], "--seed 1.5 is not an integer"),
        (["--max-time", "60s", "--seeds", str(2**32)], f"--seed {2**32} is too large"),
        (["--seeds", "1"], "--seeds goes with --max-time"),
        (["--max-time", "60s", "--bart"], "--max-time runs Miniformer only"),
    ],
)
def test_bad_arguments_are_refused_before_any_run(bench, tmp_path, capsys, argv, named):
    output_dir, report = tmp_path / "run", tmp_path / "out.json"
    with pytest.raises(SystemExit) as refused:
        bench.main([*argv, "--output-dir", str(output_dir), "--json", str(report)])
    assert refused.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("benchmark_training.py: error: ") and named in error, error
    assert sorted(tmp_path.iterdir()) == []  # no run started, no report written


def test_a_max_time_run_reports_the_published_runs_figures(bench, tmp_path, capsys):
    output_dir, report = tmp_path / "run", tmp_path / "out.json"
    argv = ["--max-time", "2s", "--seeds", "3", "--task", "copy", "--output-dir", str(output_dir), "--json", str(report),
            "--", "--size", "tiny", "--num-train", "200", "--eval-samples", "8", "--no-visualize", "--quiet", "--threads", "1"]  # fmt: skip
    assert bench.main(argv) == 0
    (row,) = json.loads(report.read_text())["runs"]
    assert row["name"] == "miniformer train --task copy --max-time 2s --seed 3"
    assert row["max_time"] == 2.0 and 2.0 <= row["training_seconds"] < 5.0 and row["steps"] > 0
    assert row["batch_size"] == 48 and row["threads"] == 1  # --max-time's own default batch; the --threads given
    assert row["held_out_examples"] == 8 and 0.0 <= row["held_out_exact_match"] <= 1.0
    # The run folder stays, as the command wrote it (the next run of the benchmark replaces it with --overwrite).
    assert json.loads((output_dir / "metrics.json").read_text())["max_time"] == 2.0
    table = capsys.readouterr().out
    assert "miniformer train --task copy --max-time 2s --seed 3" in table and "EM @60 s" not in table
