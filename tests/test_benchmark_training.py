"""Tests for scripts/benchmark_training.py's --max-time mode: its arguments refused before any run, and one short
real run whose figures come from the run folder's metrics.json. The benchmark itself runs on a quiet machine."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_training.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--max-time"], "expected at least one argument"),
        (["--max-time", ""], "'' is empty"),
        (["--max-time", "0s"], "'0s' is not a positive finite duration"),
        (["--max-time=-5m"], "'-5m' is not a duration"),
        (["--max-time", "nan"], "'nan' is not a positive finite duration"),
        (["--max-time", "inf"], "'inf' is not a positive finite duration"),
        (["--max-time", "ninety"], "'ninety' is not a duration"),
        (["--max-time", "60s", "--seeds", "-1"], "'-1' is not a seed"),
        (["--max-time", "60s", "--seeds", "1.5"], "'1.5' is not a seed"),
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
    assert not output_dir.exists()  # each run's folder is removed once its figures are read
    table = capsys.readouterr().out
    assert "miniformer train --task copy --max-time 2s --seed 3" in table and "EM @60 s" not in table
