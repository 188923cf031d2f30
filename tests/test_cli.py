"""Tests for the `miniformer` command: help texts, one-line errors with the right exit codes, run
folders that are never half-written, and a tiny train -> generate -> evaluate round trip."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import CLI_RUN_STEPS, cli_env, cli_train_argv
from miniformer_hf import cli, runs

COMMANDS = ("train", "generate", "evaluate", "average", "visualize", "push")


def run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def subcommand_parsers():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


# ---------------------------------------------------------------------------------------------
# --help
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_every_flag(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    subparser = subcommand_parsers()[command]
    for action in subparser._actions:
        for option in action.option_strings:
            assert option in out, f"{command} --help does not mention {option}"
        if action.option_strings and action.help is not argparse.SUPPRESS:
            assert action.help, f"{command} {action.option_strings} has no help text"


def test_top_level_help_lists_the_commands(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    assert all(command in out for command in COMMANDS)


def test_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "miniformer_hf.cli", "train", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--max-steps" in result.stdout


# ---------------------------------------------------------------------------------------------
# Usage errors: exit code 2, one line
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "--batch-size", "-3"], "--batch-size"),
        (["train", "--learning-rate", "fast"], "--learning-rate"),
        (["train", "--task", "chess"], "--task"),
        (["train", "--no-such-flag"], "unrecognized"),
        (["train", "--max-steps", "10", "--epochs", "2"], "not allowed"),
        (["train", "--schedule", "paper", "--learning-rate", "0.001"], "--schedule paper"),
        (["train", "--d-model", "30", "--n-heads", "4"], "divisible"),
        (["train", "--task", "copy", "--train-file", "x.csv"], "both given"),
        (["train", "--d-model", "100000", "--n-heads", "1"], "2,000,000,000"),
        (["train", "--output-dir", ""], "--output-dir is empty"),
        (["generate", "--model", "somewhere", "--threads", "100000", "a"], "CPUs"),
        (["train", "--task", "copy", "--num-train", "300", "--tokenizer", "bpe", "--vocab-size", "10"], "--vocab-size"),
        (["generate", "--model", "somewhere"], "TEXT"),
        (["evaluate", "--model", "somewhere"], "--data"),
        (["bogus"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2
    assert fragment in one_error_line(err)
    assert not (tmp_path / "runs").exists()


def test_generate_with_a_missing_model_folder_exits_1(capsys, tmp_path):
    code, _, err = run(["generate", "--model", str(tmp_path / "nowhere"), "hello"], capsys)
    assert code == 1
    assert "no such folder" in one_error_line(err)


def test_generate_with_a_folder_that_is_not_a_model_exits_1(capsys, tmp_path):
    code, _, err = run(["generate", "--model", str(tmp_path), "hello"], capsys)
    assert code == 1
    assert "not a saved model folder (no config.json)" in one_error_line(err)


# ---------------------------------------------------------------------------------------------
# Bad data files: exit code 1, one line, nothing written over an existing run folder
# ---------------------------------------------------------------------------------------------

BAD_FILES = {
    "missing_columns.jsonl": ('{"question": "a", "answer": "b"}\n'.encode(), "source"),
    "empty.csv": (b"", "empty"),
    "undecodable.csv": (b"source,target\n\xff\xfe bad,x\n", "UTF-8"),
    "missing_header.csv": (b"question,answer\na,b\n", "header"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_data_files_fail_cleanly_without_touching_the_run_folder(name, capsys, tmp_path):
    content, fragment = BAD_FILES[name]
    data_file = tmp_path / name
    data_file.write_bytes(content)
    existing = tmp_path / "run"
    existing.mkdir()
    (existing / "run_arguments.json").write_text("{}")  # an earlier run, which --overwrite may replace

    code, _, err = run(["train", "--train-file", str(data_file), "--output-dir", str(existing), "--overwrite"], capsys)

    assert code == 1
    line = one_error_line(err)
    assert fragment in line and str(data_file) in line
    assert sorted(os.listdir(existing)) == ["run_arguments.json"]
    assert sorted(os.listdir(tmp_path)) == sorted([name, "run"])  # no .incomplete folder either


def test_an_existing_run_folder_is_not_overwritten_without_overwrite(capsys, tmp_path):
    existing = tmp_path / "run"
    existing.mkdir()
    (existing / "keep.txt").write_text("an earlier run")
    code, _, err = run(["train", "--task", "copy", "--output-dir", str(existing)], capsys)
    assert code == 2
    assert "--overwrite" in one_error_line(err)
    assert sorted(os.listdir(existing)) == ["keep.txt"]


def test_resume_without_a_run_exits_1(capsys, tmp_path):
    code, _, err = run(["train", "--task", "copy", "--output-dir", str(tmp_path / "run"), "--resume"], capsys)
    assert code == 1
    assert "no checkpoints" in one_error_line(err)


def test_evaluate_reports_bad_data_in_one_line(capsys, tmp_path):
    data_file = tmp_path / "empty.jsonl"
    data_file.write_text("")
    code, _, err = run(["evaluate", "--model", str(tmp_path), "--data", str(data_file)], capsys)
    assert code == 1
    assert "empty" in one_error_line(err)


# ---------------------------------------------------------------------------------------------
# A tiny run end to end
# ---------------------------------------------------------------------------------------------


# `cli_run` (tests/conftest.py): the session's run folder from the real `miniformer train`, 4 steps.


def test_train_writes_a_complete_run_folder(cli_run):
    finished_run = cli_run
    names = set(os.listdir(finished_run))
    expected = {
        "model.safetensors", "config.json", "configuration_miniformer.py", "modeling_miniformer.py",
        "generation_config.json", "tokenizer.json", "tokenizer_config.json", "README.md", "metrics.json",
        "loss_curve.png", "attention", "checkpoints",
    }  # fmt: skip
    assert expected <= names, expected - names
    assert not os.path.exists(str(finished_run) + runs.INCOMPLETE_SUFFIX)
    config = json.loads((finished_run / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSeq2SeqLM"].startswith("modeling_miniformer.")
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert 0.0 <= metrics["eval_exact_match"] <= 1.0 and metrics["max_steps"] == CLI_RUN_STEPS
    from miniformer_hf.metrics import EVAL_METRIC_NAMES

    for prefix in ("eval", "validation"):  # the schema of runs: every metric name on both splits, chrF included
        assert all(isinstance(metrics[f"{prefix}_{name}"], float) for name in EVAL_METRIC_NAMES), sorted(metrics)
    assert os.listdir(finished_run / "attention")
    assert "Miniformer" in (finished_run / "README.md").read_text()


def test_generate_and_evaluate_use_the_run_folder(cli_run, pairs_file, capsys, tmp_path):
    finished_run = cli_run
    code, out, _ = run(["generate", "--model", str(finished_run), "a b c", "f e d"], capsys)
    assert code == 0 and len(out.splitlines()) == 2

    report = tmp_path / "report.json"
    code, out, _ = run(
        ["evaluate", "--model", str(finished_run), "--data", str(pairs_file), "--limit", "30", "--output", str(report)],
        capsys,
    )
    assert code == 0
    metrics = json.loads(out)
    assert {"exact_match", "cer", "bleu", "chrf"} <= metrics.keys() and metrics["num_examples"] == 30
    assert len(json.loads(report.read_text())["predictions"]) == 30


def test_resume_a_finished_run_trains_further_and_replaces_it_only_at_the_end(cli_run_copy, pairs_file, capsys):
    finished_run = cli_run_copy
    argv = [*cli_train_argv(pairs_file, finished_run, steps=CLI_RUN_STEPS + 2), "--no-visualize", "--resume"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert metrics["max_steps"] == CLI_RUN_STEPS + 2
    steps = (CLI_RUN_STEPS, CLI_RUN_STEPS + 2)  # --average-last 2 keeps the last two, the older ones go
    assert sorted(os.listdir(finished_run / "checkpoints")) == [f"checkpoint-{step}" for step in steps]

    different = [*argv[:-2], "--size", "seed", "--resume"]
    code, _, err = run(different, capsys)
    assert code == 2 and "--size" in one_error_line(err)


# ---------------------------------------------------------------------------------------------
# A command line that answers at once (the timing itself: scripts/benchmark_cli.py)
# ---------------------------------------------------------------------------------------------


def test_help_and_usage_errors_import_no_heavy_library():
    # Importing torch, transformers, datasets, matplotlib or bertviz costs seconds on a small machine.
    script = (
        "import sys\n"
        "sys.argv[0] = 'miniformer'\n"
        "from miniformer_hf.cli import main\n"
        "codes = [main(['--help']), main(['train', '--help']), main(['visualize', '--help']), "
        "main(['push', '--help']), main(['train', '--batch-size', '-3'])]\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'datasets', 'matplotlib', 'bertviz', 'huggingface_hub') "
        "if m in sys.modules)\n"
        "print(codes, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "[0, 0, 0, 0, 2] []", result.stdout + result.stderr


def test_the_cli_lists_the_tasks_tokenizers_and_schedules_the_library_has():
    from miniformer_hf import runs
    from miniformer_hf.data import BUILTIN_TASKS
    from miniformer_hf.tokenization import TOKENIZER_KINDS

    assert sorted(runs.TASK_NAMES) == sorted(BUILTIN_TASKS)
    assert sorted(runs.TOKENIZER_KINDS) == sorted(TOKENIZER_KINDS)


def test_quiet_prints_only_the_final_summary(cli_run_process, cli_run):
    result = cli_run_process  # `miniformer train ... --logging-steps 1 --quiet`, 4 steps (tests/conftest.py)
    output_dir = cli_run
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Run folder: {output_dir}"
    assert len(result.stdout.splitlines()) == 3 and f"Steps: {CLI_RUN_STEPS}" in result.stdout
    assert "{" not in result.stdout + result.stderr  # no metric dictionaries
    assert "shards" not in result.stderr and "%|" not in result.stderr, result.stderr  # no progress bars


# ---------------------------------------------------------------------------------------------
# One command, one module (issue 20.3) and the smaller flags (issue 22)
# ---------------------------------------------------------------------------------------------


def test_version(capsys):
    from miniformer_hf import __version__

    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip().startswith("miniformer ") and out.split()[1][0].isdigit()
    assert out.split()[1] == __version__ or out.split()[1].count(".") >= 1


def test_every_command_takes_quiet():
    for name, subparser in subcommand_parsers().items():
        assert {"-q", "--quiet"} <= set(subparser._option_string_actions), name


def test_each_command_is_a_module_with_add_arguments_and_run():
    from miniformer_hf import commands

    assert set(commands.COMMANDS) == set(subcommand_parsers())
    for name in commands.COMMANDS:
        module = commands.command_module(name)
        assert callable(module.add_arguments) and callable(module.run), name


def test_feature_modules_never_import_the_command_line():
    import ast
    from pathlib import Path

    package = Path(cli.__file__).parent
    for path in package.glob("*.py"):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [alias.name for alias in node.names]
                assert not any(name.split(".")[0] in ("cli", "commands") for name in names), (path.name, names)


@pytest.mark.parametrize("command", ["generate", "evaluate", "visualize", "average", "push"])
def test_quiet_is_accepted_by_every_command(command, capsys, tmp_path):
    required = {
        "generate": ["--model", str(tmp_path / "none"), "x"],
        "evaluate": ["--model", str(tmp_path / "none"), "--data", str(tmp_path / "none.jsonl")],
        "visualize": ["--model", str(tmp_path / "none"), "x", "--out", str(tmp_path / "out")],
        "average": ["--model", str(tmp_path / "none")],
        "push": ["--model", str(tmp_path / "none"), "--repo-id", "a/b"],
    }[command]
    code, _, err = run([command, "-q", *required], capsys)
    assert code == 1 and "usage" not in err, err  # past the parser: the missing folder is the (one-line) error
    one_error_line(err)


def test_generate_and_visualize_print_no_library_warning_for_a_trained_run(cli_run, tmp_path):
    # issue 21/22: a folder written by `miniformer train` generates and visualizes with no transformers warning
    # (a UserWarning is an error here; the generation config holds max_new_tokens, not max_length). Both
    # commands run in one fresh interpreter, as a user's two commands would, one after the other.
    commands = [
        ["generate", "--model", str(cli_run), "a b c", "--max-new-tokens", "6"],
        ["visualize", "--model", str(cli_run), "a b c", "--out", str(tmp_path / "views"), "--max-new-tokens", "6"],
    ]
    script = f"import sys\nfrom miniformer_hf.cli import main\nprint('exit codes', [main(a) for a in {commands!r}])\n"
    completed = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", script],
                               env=cli_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert completed.stdout.splitlines()[-1:] == ["exit codes [0, 0]"], completed.stdout[-1000:] + completed.stderr[-2000:]
    warnings = [line for line in completed.stderr.splitlines()  # our own cut-output notice aside
                if ("warn" in line.lower() or "[transformers]" in line or "max_length" in line)
                and not line.startswith("miniformer: warning:")]
    assert not warnings and "Traceback" not in completed.stderr, completed.stderr[-2000:]
    assert any((tmp_path / "views").iterdir())
