"""Tests for miniformer_hf.training: the `miniformer train` pipeline as a function (run_training), its
time limit with resume after a real SIGKILL of the command, the token budget, streaming resume and the generation
config it ships."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from miniformer_hf import runs
from miniformer_hf.errors import MiniformerError
from miniformer_hf.options import OptionError
from miniformer_hf.runs import RunError, TrainingRunOptions
from miniformer_hf.training import (
    STAGING_DIR,
    NonFiniteTrainingError,
    TrainingRunResult,
    TransformerTrainer,
    paper_learning_rate,
    run_training,
)


def test_the_pipeline_keeps_exporting_the_names_others_import():
    from miniformer_hf import trainer

    assert TransformerTrainer is trainer.TransformerTrainer and paper_learning_rate is trainer.paper_learning_rate
    assert STAGING_DIR == trainer.STAGING_DIR and issubclass(NonFiniteTrainingError, RunError)
    assert TrainingRunResult.__dataclass_fields__.keys() >= {"output_dir", "metrics", "already_finished"}


def test_run_training_is_the_command_as_a_function(tmp_path):
    result = run_training(
        task="copy", size="tiny", num_train=200, max_steps=2, batch_size=16, eval_steps=2, eval_samples=4,
        no_visualize=True, quiet=True, output_dir=str(tmp_path / "copy"),
    )  # fmt: skip
    assert result.output_dir == tmp_path / "copy" and not result.already_finished
    assert result.metrics["max_steps"] == 2
    arguments = json.loads((tmp_path / "copy" / "run_arguments.json").read_text())
    assert arguments["task"] == "copy" and arguments["data_fingerprint"].startswith("sha256:")
    assert runs.verify_weights(tmp_path / "copy")  # the checksum was recorded and matches
    with pytest.raises(OptionError) as refused:  # options are checked by options.resolve, in Python's names
        run_training(TrainingRunOptions(task="copy", train_file="x.csv"))
    assert refused.value.exit_code == 2


def _tiny_run(output_dir, **options) -> TrainingRunResult:
    settings = dict(task="copy", size="tiny", num_train=200, batch_size=16, eval_samples=4, no_visualize=True,
                    quiet=True, threads=1, output_dir=str(output_dir))  # fmt: skip
    return run_training(**{**settings, **options})


# ---------------------------------------------------------------------------------------------
# --max-time: the run, its schedule, its record, and resume after a real SIGKILL
# ---------------------------------------------------------------------------------------------


def test_max_time_run_stops_at_the_limit_with_the_schedule_ended_and_says_so(tmp_path):
    result = _tiny_run(tmp_path / "timed", max_time=4.0, eval_steps=25, warmup_steps=5, logging_steps=2)
    metrics = result.metrics
    assert metrics["max_time"] == 4.0 and 4.0 <= metrics["training_seconds"] < 4.0 + 3.0
    log = json.loads((tmp_path / "timed" / "log_history.json").read_text())
    rates = [entry for entry in log if "learning_rate" in entry]
    assert rates[-1]["step"] == metrics["max_steps"]  # the limit's step is logged...
    # transformers logs the rate each update used (computed one step before): one step short of the end,
    # a few percent of the peak in a 4 s run (the scheduler itself is at 0: test_trainer checks it).
    assert rates[-1]["learning_rate"] < min(0.25 * metrics["learning_rate"], rates[-2]["learning_rate"])
    assert max(entry["learning_rate"] for entry in rates) > 0.3 * metrics["learning_rate"]
    card = (tmp_path / "timed" / "README.md").read_text()
    assert "Training time limit" in card and "4.0 s" in card
    arguments = json.loads((tmp_path / "timed" / "run_arguments.json").read_text())
    assert arguments["max_time"] == 4.0
    with pytest.raises(MiniformerError) as refused:  # a usage error, before anything is written
        _tiny_run(tmp_path / "bad", max_time=0.0)
    assert refused.value.exit_code == 2 and "max" in str(refused.value) and "time" in str(refused.value)
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_max_time_resume_after_sigkill_continues_the_same_budget(tmp_path, capsys):
    """A `miniformer train --max-time` process killed with SIGKILL mid-run: nothing appears where the run folder
    goes, the same command without --resume is refused (it would throw the checkpoints away), and --resume
    trains only the rest of the same time budget and publishes the run."""
    from miniformer_hf import cli

    output_dir, budget = tmp_path / "run", 6.0
    argv = [
        "train", "--task", "copy", "--size", "tiny", "--num-train", "200", "--batch-size", "16", "--eval-samples", "4",
        "--no-visualize", "--quiet", "--threads", "1", "--max-time", str(budget), "--eval-steps", "5",
        "--output-dir", str(output_dir),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    process = subprocess.Popen([sys.executable, "-m", "miniformer_hf.cli", *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    staging = output_dir.parent / f"{output_dir.name}{runs.INCOMPLETE_SUFFIX}"
    checkpoints = staging / runs.CHECKPOINTS
    deadline, saved = time.time() + 240, 0.0
    while process.poll() is None and time.time() < deadline and saved < 2.0:
        for clock in checkpoints.glob("checkpoint-*/training_clock.json"):
            try:
                saved = max(saved, json.loads(clock.read_text())["training_seconds"])
            except (FileNotFoundError, ValueError):  # rotated away, or being written, since it was listed
                pass
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not output_dir.exists()  # nothing half-written where the run folder goes
    kept = runs.read_json(sorted(checkpoints.glob("checkpoint-*/training_clock.json"), key=os.path.getmtime)[-1])

    capsys.readouterr()
    assert cli.main(argv) == 2  # without --resume: refused, one line that names the flag, checkpoints kept
    assert "--resume" in capsys.readouterr().err and checkpoints.is_dir() and not output_dir.exists()

    assert cli.main([*argv, "--resume"]) == 0, capsys.readouterr().err[-2000:]
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert budget <= metrics["training_seconds"] < budget + 3.0
    # The resumed run trained only the rest of the budget (its own runtime includes small evaluations).
    assert metrics["train_runtime"] < budget - kept["training_seconds"] + 3.0, (metrics["train_runtime"], kept)
    assert metrics["max_steps"] > 0 and not staging.exists()


# ---------------------------------------------------------------------------------------------
# Budgets and streams: refused before training
# ---------------------------------------------------------------------------------------------


def test_a_token_budget_below_the_longest_example_is_refused_before_training(tmp_path):
    with pytest.raises(MiniformerError) as refused:
        _tiny_run(tmp_path / "budget", tokens_per_batch=3, max_steps=2, eval_steps=2)
    message = str(refused.value)
    assert refused.value.exit_code == 2 and "\n" not in message
    assert "tokens" in message and "longest" in message
    numbers = [int(number) for number in re.findall(r"\d+", message)]
    assert 3 in numbers and max(numbers) > 3  # the budget and the longest example's token count
    assert not (tmp_path / "budget").exists() and not (tmp_path / f"budget{runs.INCOMPLETE_SUFFIX}").exists()


def test_a_streaming_run_refuses_to_resume_on_changed_data(tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    rows = [{"source": f"a{i % 7} b{i % 5}", "target": f"b{i % 5} a{i % 7}"} for i in range(60)]

    def write(rows):
        (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))

    write(rows)
    options = dict(dataset=str(folder), streaming=True, tokenizer_sample=40, size="tiny", batch_size=8,
                   eval_steps=2, eval_samples=6, no_visualize=True, quiet=True, threads=1,
                   output_dir=str(tmp_path / "stream"))  # fmt: skip
    first = run_training(max_steps=2, **options)
    write([{**row, "target": row["target"].upper()} for row in rows])  # every target edited
    with pytest.raises(RunError) as refused:
        run_training(max_steps=4, resume=True, **options)
    assert refused.value.exit_code == 1 and "the data differ" in str(refused.value)
    assert json.loads((tmp_path / "stream" / "metrics.json").read_text()) == first.metrics  # untouched
    write(rows)  # restored: the same run resumes
    assert run_training(max_steps=4, resume=True, **options).metrics["max_steps"] == 4


# ---------------------------------------------------------------------------------------------
# The generation config the run folder ships (the loss curve: test_run_report.py)
# ---------------------------------------------------------------------------------------------


def test_the_trained_model_generates_without_length_warnings(tmp_path):
    import logging
    import warnings

    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from miniformer_hf import PIPELINE_TASK, MiniformerForConditionalGeneration
    from miniformer_hf.generation import generate_texts

    caught: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            caught.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    hf_logging.get_logger("transformers").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as python_warnings:
            warnings.simplefilter("always")
            _tiny_run(tmp_path / "quiet", max_steps=2, eval_steps=2, no_visualize=False)
            model = MiniformerForConditionalGeneration.from_pretrained(tmp_path / "quiet")
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tmp_path / "quiet")
            generate_texts(model, tokenizer, ["a b"], max_new_tokens=5)
            ids = tokenizer(["a b"], return_tensors="pt")["input_ids"]
            model.generate(ids, max_new_tokens=7)
            pipeline(PIPELINE_TASK, model=model, tokenizer=tokenizer)("a b", max_new_tokens=6)
    finally:
        hf_logging.get_logger("transformers").removeHandler(handler)
    messages = caught + [str(warning.message) for warning in python_warnings]
    assert not [message for message in messages if "max_length" in message], messages
    generation = json.loads((tmp_path / "quiet" / "generation_config.json").read_text())
    assert "max_length" not in generation and generation["max_new_tokens"] > 0
