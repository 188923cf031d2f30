"""Tests for miniformer_hf.runs: what a run folder is (names, metrics schema, validation for each use,
the lock, the one non-finite check, disk-full messages). Workflow tests are in test_faults.py."""

from __future__ import annotations

import errno
import json

import pytest
import torch

from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration, runs
from miniformer_hf.metrics import EVAL_METRIC_NAMES, METRIC_NAMES


@pytest.fixture
def saved_model(tmp_path):
    torch.manual_seed(0)
    model = MiniformerForConditionalGeneration(
        MiniformerConfig(vocab_size=40, d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.0)
    )
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    runs.write_weights_checksum(folder)
    return model, folder


# --- The metrics schema ---------------------------------------------------------------------------


def test_the_metrics_schema_is_built_from_metrics_py():
    assert runs.metric_names()[: len(EVAL_METRIC_NAMES)] == EVAL_METRIC_NAMES
    metrics = {runs.metric_key("eval", name): 0.5 for name in METRIC_NAMES}
    metrics["validation_chrf"] = 70.0
    metrics["eval_split"] = "test"
    found = {(prefix, name) for prefix, _, name, _ in runs.evaluation_metrics(metrics)}
    assert {("eval", name) for name in METRIC_NAMES} <= found and ("validation", "chrf") in found
    assert runs.split_metrics({"test_chrf": 1.0, "test_loss": 2.0, "other": 3}, prefix="eval", source_prefix="test") == {
        "eval_chrf": 1.0, "eval_loss": 2.0,
    }  # fmt: skip
    with pytest.raises(ValueError):
        runs.metric_key("train", "bleu")


def test_the_model_card_shows_every_metric_including_chrf(tmp_path, saved_model):
    from miniformer_hf.sharing import render_model_card

    model, _ = saved_model
    metrics = {"task": "copy", **{f"eval_{name}": 0.25 for name in EVAL_METRIC_NAMES}}
    card = str(render_model_card(model.config, metrics=metrics))
    assert "chrF, evaluation split" in card and "chrf" in card.split("---")[1]
    for name in METRIC_NAMES:
        assert name in card.split("---")[1], name


# --- The one non-finite check ------------------------------------------------------------------------


def test_non_finite_weights_reads_models_mappings_and_folders(saved_model):
    model, folder = saved_model
    assert runs.non_finite_weights(model) == [] and runs.non_finite_weights(folder) == []
    state = dict(model.state_dict())
    name = next(key for key, value in state.items() if value.is_floating_point())
    state[name] = state[name].clone()
    state[name][0] = float("inf")
    assert runs.non_finite_weights(state) == [name]
    assert runs.non_finite_weights([("grad", torch.tensor([float("nan")])), ("none", None)]) == ["grad"]
    assert runs.non_finite_weights({"steps": torch.tensor([3])}) == []  # integer buffers are not weights
    with pytest.raises(runs.RunError, match="NaN or infinite.*" + name.replace(".", r"\.")):
        runs.check_finite_weights(state, where="here")


# --- Checksums ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("record", ["[1, 2]", '"sha256:abc"', '{"model.safetensors": 3}', "{"])
def test_a_malformed_checksums_file_is_one_run_error(saved_model, record):
    _, folder = saved_model
    (folder / runs.CHECKSUMS).write_text(record)
    with pytest.raises(runs.RunError, match="checksums.json") as raised:
        runs.verify_weights(folder)
    assert "\n" not in str(raised.value)


def test_an_empty_checksums_record_is_refused_as_from_pretrained_refuses_it(saved_model):
    _, folder = saved_model
    (folder / runs.CHECKSUMS).write_text("{}")
    with pytest.raises(runs.RunError, match="checksums.json holds dict {}") as raised:
        runs.verify_weights(folder)
    assert "\n" not in str(raised.value)


def test_a_truncated_weights_file_is_named_by_the_python_api(saved_model):
    _, folder = saved_model
    (folder / runs.CHECKSUMS).unlink()
    weights = folder / runs.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(runs.RunError, match="model.safetensors"):
        runs.load_run_folder(folder)
    with pytest.raises(runs.RunError, match="model.safetensors"):
        runs.non_finite_weights(folder)


# --- Validation for each use -----------------------------------------------------------------------------------


def test_check_run_folder_asks_each_use_for_what_it_needs(saved_model, tmp_path):
    _, folder = saved_model
    assert runs.check_run_folder(folder, use="generate")["model_type"] == "miniformer"
    assert runs.check_run_folder(folder, use="average")
    with pytest.raises(runs.RunError, match="no tokenizer"):
        runs.check_run_folder(folder, use="demo")
    with pytest.raises(runs.RunError, match="no tokenizer"):
        runs.check_run_folder(folder, use="push")
    with pytest.raises(runs.RunError, match="no such folder"):
        runs.check_run_folder(tmp_path / "missing", use="generate")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(runs.RunError, match="not 'miniformer'"):
        runs.check_run_folder(tmp_path / "bert", use="push")
    with pytest.raises(ValueError):
        runs.check_run_folder(folder, use="anything")


def test_run_identity_tells_runs_apart(saved_model, tmp_path):
    _, folder = saved_model
    runs.write_json(folder / runs.RUN_ARGUMENTS, {"task": "copy", "data_fingerprint": "sha256:1", "seed": 0})
    same = runs.run_identity(folder)
    assert same == runs.run_identity(folder) and same["data_fingerprint"] == "sha256:1"
    runs.write_json(folder / runs.RUN_ARGUMENTS, {"task": "copy", "data_fingerprint": "sha256:2", "seed": 0})
    assert runs.run_identity(folder)["data_fingerprint"] != same["data_fingerprint"]
    checkpoint = tmp_path / "run" / runs.CHECKPOINTS / "checkpoint-4"
    assert runs.run_folder_of(checkpoint) == (tmp_path / "run").resolve()


# --- Where a command may write ------------------------------------------------------------------------------------------


def test_check_destination_keeps_live_and_interrupted_runs(tmp_path):
    output_dir, staging = tmp_path / "run", tmp_path / ("run" + runs.INCOMPLETE_SUFFIX)
    (staging / runs.CHECKPOINTS / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(runs.RunError, match="interrupted training run"):
        runs.check_destination(output_dir, staging, overwrite=True, command="average")
    runs.check_destination(output_dir, staging, overwrite=True, command="train")  # train --overwrite starts over
    lock = runs.RunLock(staging)
    assert lock.try_acquire()
    try:
        with pytest.raises(runs.RunError, match="PID"):
            runs.check_destination(output_dir, staging, overwrite=True, command="average")
    finally:
        lock.release()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(runs.RunError, match="not a Miniformer run folder"):
        runs.check_destination(tmp_path / "notes", tmp_path / "notes.incomplete", overwrite=True, command="average")


def test_take_staging_never_clears_a_locked_folder(tmp_path):
    output_dir, staging = tmp_path / "run", tmp_path / ("run" + runs.INCOMPLETE_SUFFIX)
    staging.mkdir()
    (staging / "tokenizer.json").write_text("{}")
    holder = runs.RunLock(staging)
    assert holder.try_acquire()
    try:
        with pytest.raises(runs.RunError, match="PID"):
            runs.take_staging(output_dir, staging)
        assert (staging / "tokenizer.json").is_file()
    finally:
        holder.release()
    lock = runs.take_staging(output_dir, staging)  # abandoned: cleared and locked
    try:
        assert sorted(path.name for path in staging.iterdir()) == [runs.LOCK_FILE]
    finally:
        lock.release()


# --- Disk full ---------------------------------------------------------------------------------------------


def test_disk_full_is_recognised_and_said_in_one_line():
    torch_error = RuntimeError(
        "[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file data/0: file write failed"
    )
    for error in (OSError(errno.ENOSPC, "No space left on device", "optimizer.pt"), torch_error):
        assert runs.disk_full(error)
        message = str(runs.explain_os_error(error))
        assert "disk full" in message and "safe" in message and "\n" not in message
    kept = str(runs.explain_os_error(torch_error, kept="checkpoint-4 is kept"))
    assert "checkpoint-4 is kept" in kept
    assert not runs.disk_full(RuntimeError("shapes do not match"))
    assert "Permission" in str(runs.explain_os_error(PermissionError(errno.EACCES, "Permission denied", "/x")))
