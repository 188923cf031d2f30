"""Nothing lost, nothing silently wrong: the `miniformer` command against hostile inputs and faults.

Each test is one case of the fault sweep (issue 14). Runs are tiny (the tiny model, a few steps). Most cases
call the command's `main` in this process to keep the suite fast; the cases about data loss run the command as
`python -m miniformer_hf.cli` does, all of them in one Python process (`run_together`, tests/cli_runner.py), for
its exit status and output; the cases where the process boundary is the point (a signal, a lock held by a live
run, a fresh process's first load) start a process of their own.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys

import pytest

from conftest import CLI_RUN_STEPS, cli_env, cli_train_argv, write_reverse_pairs
from miniformer_hf import cli, runs

ENV = cli_env()


def in_process(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def tree(folder) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its bytes."""
    result = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                result[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return result


def write_pairs(path, count=120, extra=None):
    return write_reverse_pairs(path, count=count, extra=extra)


def train_argv(data_file, output_dir, steps=CLI_RUN_STEPS):
    """The session run's `miniformer train` arguments (conftest.cli_train_argv) for ``output_dir``,
    without attention views (not compared on --resume)."""
    return [*cli_train_argv(data_file, output_dir, steps=steps), "--no-visualize"]


@pytest.fixture
def pairs(pairs_file):
    return pairs_file  # the data of `cli_run`, the session's run folder (tests/conftest.py)


@pytest.fixture
def finished(cli_run):
    """A run folder from the real command, uninterrupted (read only): 4 steps, checkpoint-2 and checkpoint-4."""
    return cli_run


@pytest.fixture
def run_copy(cli_run_copy):
    return cli_run_copy


# The cases run together: name -> prepare(its own empty folder, the training data, the finished run folder),
# which makes what the command meets there and returns the command's arguments. Each test below reads its case.
TOGETHER = {}


def run_together_case(name):
    def register(prepare):
        TOGETHER[name] = prepare
        return prepare

    return register


@pytest.fixture(scope="module")
def run_together(tmp_path_factory, pairs_file, cli_run) -> dict:
    """Every case of TOGETHER, prepared in a folder of its own (also its working folder), then run one after
    another in one Python process as `python -m miniformer_hf.cli` runs each (tests/cli_runner.py): starting
    Python and importing the libraries is most of each one's time. name -> (folder, {code, stdout, stderr})."""
    from cli_runner import run_commands

    folders, commands = {}, {}
    for name, prepare in TOGETHER.items():
        folders[name] = tmp_path_factory.mktemp(name.replace(" ", "-"))
        commands[name] = (folders[name], prepare(folders[name], pairs_file, cli_run))
    results = run_commands(commands, env=ENV)
    return {name: (folders[name], results[name]) for name in TOGETHER}


@run_together_case("average in a fresh process")  # the first case: the process has imported nothing else yet
def _average_own_checkpoints(folder, pairs, finished):
    return ["average", "--model", str(finished), "--last", "2", "--output-dir", str(folder / "avg")]


# ---------------------------------------------------------------------------------------------
# 1-4: data lost or overwritten
# ---------------------------------------------------------------------------------------------


@run_together_case("not a run")
def _documents_folder(folder, pairs, finished):
    (folder / "mydocs").mkdir()
    (folder / "mydocs" / "thesis.txt").write_text("four years of work")
    return [*train_argv(pairs, folder / "mydocs"), "--overwrite"]


def test_overwrite_refuses_a_folder_that_is_not_a_run(run_together):
    folder, result = run_together["not a run"]
    assert result["code"] == 1
    assert "not a Miniformer run folder" in one_line(result["stderr"])
    assert (folder / "mydocs" / "thesis.txt").read_text() == "four years of work"
    assert sorted(os.listdir(folder)) == ["mydocs"]  # no .incomplete, no .replaced-NNNN


def test_overwrite_refuses_a_plain_file_and_the_current_folder(pairs, tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    code, _, err = in_process(capsys, *train_argv(pairs, afile), "--overwrite")
    assert code == 1 and "is a file" in one_line(err)
    assert afile.read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["afile"]

    monkeypatch.chdir(tmp_path)
    code, _, err = in_process(capsys, *train_argv(pairs, "."), "--overwrite")
    assert code == 2 and "current folder" in one_line(err)
    assert sorted(os.listdir(tmp_path)) == ["afile"]


@run_together_case("resume finished")
def _finished_copy(folder, pairs, finished):
    shutil.copytree(finished, folder / "run")
    return [*train_argv(pairs, folder / "run"), "--resume"]


def test_resume_on_a_finished_run_changes_nothing(run_together, pairs, cli_run, capsys):
    folder, result = run_together["resume finished"]
    finished = folder / "run"
    before = tree(cli_run)  # what was copied there before the command ran
    assert result["code"] == 0, result["stderr"]
    assert "already finished" in result["stdout"]
    assert tree(finished) == before
    code, _, err = in_process(capsys, *train_argv(pairs, finished, steps=2), "--resume")  # refused before any work
    assert code == 2 and f"already done {CLI_RUN_STEPS}" in one_line(err)
    assert tree(finished) == before
    assert not os.path.exists(str(finished) + runs.INCOMPLETE_SUFFIX)


@run_together_case("killed after last step")
def _killed_after_last_step(folder, pairs, finished):
    # What a SIGKILL during the final evaluation or save leaves: the staging folder with the last
    # step's checkpoint, the tokenizer and the run arguments, and no run folder.
    staging = folder / ("killed" + runs.INCOMPLETE_SUFFIX)
    shutil.copytree(finished, staging)
    keep = {"checkpoints", "tokenizer.json", "tokenizer_config.json", runs.RUN_ARGUMENTS}
    for name in os.listdir(staging):
        if name not in keep:
            path = staging / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return [*train_argv(pairs, folder / "killed"), "--resume"]


def test_a_run_killed_after_its_last_step_finishes_exactly_as_the_uninterrupted_one(run_together, finished):
    folder, result = run_together["killed after last step"]
    output_dir = folder / "killed"
    staging = folder / ("killed" + runs.INCOMPLETE_SUFFIX)
    assert result["code"] == 0, result["stderr"]
    assert not staging.exists()
    assert (output_dir / "model.safetensors").read_bytes() == (finished / "model.safetensors").read_bytes()
    resumed = json.loads((output_dir / "metrics.json").read_text())
    uninterrupted = json.loads((finished / "metrics.json").read_text())
    assert resumed["max_steps"] == uninterrupted["max_steps"] == 4  # not one step more
    for name in ("eval_exact_match", "eval_cer", "eval_loss", "validation_loss"):
        assert resumed[name] == uninterrupted[name], name


def test_a_live_run_holds_a_lock_and_a_second_run_touches_nothing(pairs, tmp_path, capsys):
    output_dir = tmp_path / "run"
    staging = tmp_path / ("run" + runs.INCOMPLETE_SUFFIX)
    staging.mkdir()
    (staging / "tokenizer.json").write_text("{}")
    lock = runs.RunLock(staging)  # the first run (this process) is writing
    assert lock.try_acquire()
    try:
        before = tree(staging)
        for flag in ([], ["--resume"], ["--overwrite"]):
            code, _, err = in_process(capsys, *train_argv(pairs, output_dir), *flag)
            line = one_line(err)
            assert code == 1 and f"PID {os.getpid()}" in line and "interrupted" not in line, line
            assert tree(staging) == before and not output_dir.exists()
    finally:
        lock.release()


def test_a_failed_start_leaves_nothing_behind_and_names_the_file_line(tmp_path, capsys):
    long_target = "x" * 1500  # over the 1,024-position table once tokenized
    data_file = write_pairs(tmp_path / "pairs.jsonl", extra={"source": "a b", "target": long_target})
    output_dir = tmp_path / "run"
    code, _, err = in_process(capsys, *train_argv(data_file, output_dir))
    line = one_line(err)
    assert code == 1
    assert f"{data_file} line 3" in line and "1024" in line and not re.search(r"example \d", line), line
    assert "max_source_length" not in line and "max_target_length" not in line
    assert sorted(os.listdir(tmp_path)) == ["pairs.jsonl"]


def test_an_abandoned_start_does_not_block_the_same_command(pairs, tmp_path, capsys):
    # A run killed before its first checkpoint (or written by an older version) left this behind.
    staging = tmp_path / ("run" + runs.INCOMPLETE_SUFFIX)
    staging.mkdir()
    (staging / "tokenizer.json").write_text("{}")
    code, _, err = in_process(capsys, *train_argv(pairs, tmp_path / "run", steps=2))
    assert code == 0, err
    assert (tmp_path / "run" / "model.safetensors").is_file() and not staging.exists()


# ---------------------------------------------------------------------------------------------
# 5, 8-10: wrong results reported as success
# ---------------------------------------------------------------------------------------------


@run_together_case("non-finite")
def _overflowing_learning_rate(folder, pairs, finished):
    return [*train_argv(pairs, folder / "run"), "--learning-rate", "1e300"]  # finite; step 1 overflows


def test_a_non_finite_run_stops_with_one_error_and_publishes_nothing(run_together):
    folder, result = run_together["non-finite"]
    assert result["code"] == 1
    line = one_line(result["stderr"])
    assert "training stopped at step" in line and "NaN or infinite" in line and "--learning-rate" in line, line
    assert sorted(os.listdir(folder)) == []  # no run folder from NaN weights, no .incomplete


def test_resume_refuses_changed_data(finished, tmp_path, capsys):
    changed = tmp_path / "pairs.jsonl"
    with open(changed, "w", encoding="utf-8") as handle:
        for i in range(120):
            handle.write(json.dumps({"source": f"q{i % 7} z", "target": f"é{i % 5} ü"}) + "\n")
    output_dir = tmp_path / "run"
    shutil.copytree(finished, output_dir)
    arguments = json.loads((output_dir / runs.RUN_ARGUMENTS).read_text())
    arguments["train_file"] = str(changed)  # same flags, the file's content changed
    runs.write_json(output_dir / runs.RUN_ARGUMENTS, arguments)
    before = tree(output_dir)
    code, _, err = in_process(capsys, *train_argv(changed, output_dir, steps=6), "--resume")
    assert code == 1 and "data differ" in one_line(err)
    assert tree(output_dir) == before


def corrupt(path, offset_from_end=200, size=64):
    data = bytearray(path.read_bytes())
    data[-offset_from_end : -offset_from_end + size] = b"\xff" * size
    path.write_bytes(bytes(data))


def test_corrupted_weights_are_caught_by_the_checksum_everywhere(run_copy, pairs, tmp_path, capsys):
    corrupt(run_copy / "model.safetensors")
    code, out, err = in_process(capsys, "generate", "--model", run_copy, "a b c")
    assert code == 1 and out == ""
    line = one_line(err)
    assert "model.safetensors is corrupted" in line and "SHA-256" in line
    code, _, err = in_process(capsys, "evaluate", "--model", run_copy, "--data", pairs, "--limit", "4")
    assert code == 1 and "corrupted" in one_line(err)
    code, _, err = in_process(capsys, "visualize", "--model", run_copy, "a b c", "--out", tmp_path / "views")
    assert code == 1 and "corrupted" in one_line(err)
    code, _, err = in_process(capsys, "push", "--model", run_copy, "--repo-id", "alice/broken", "--token", "x")
    assert code == 1 and "corrupted" in one_line(err)


@pytest.mark.parametrize("checksums", ["deleted", "empty", "rewritten"])
def test_non_finite_weights_are_refused_with_no_output(run_copy, checksums, capsys):
    # issue 23.6: a model with non-finite weights never produces output as if it were fine.
    from safetensors.torch import load_file, save_file

    weights = load_file(run_copy / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] * float("nan")
    save_file(weights, run_copy / "model.safetensors", metadata={"format": "pt"})
    if checksums == "deleted":
        (run_copy / "checksums.json").unlink()
    elif checksums == "empty":
        (run_copy / "checksums.json").write_text("{}")
    else:
        runs.write_weights_checksum(run_copy)
    code, out, err = in_process(capsys, "generate", "--model", run_copy, "a b c")
    line = one_line(err)
    if checksums == "empty":  # a checksums.json that lists no file is refused before the weights are read
        assert code == 1 and out == "" and "checksums.json" in line
    else:
        assert code == 1 and out == "" and "NaN or infinite" in line and name in line


def test_limits_are_checked_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = in_process(capsys, "train", "--task", "copy", "--num-train", "100000000")
    line = one_line(err)
    assert code == 1 and "2,000,000" in line and "--num-train" in line
    huge = tmp_path / "huge.jsonl"
    huge.write_text(json.dumps({"source": "a", "target": "b"}) + "\n" + json.dumps({"source": "y" * 200_001, "target": "b"}))
    code, _, err = in_process(capsys, "train", "--train-file", huge)
    line = one_line(err)
    assert code == 1 and "line 2" in line and "100,000" in line
    assert sorted(os.listdir(tmp_path)) == ["huge.jsonl"]


# ---------------------------------------------------------------------------------------------
# 11, 13: one-line errors instead of tracebacks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "header"])
def test_damaged_safetensors_without_a_checksum_give_one_line(run_copy, damage, capsys):
    (run_copy / runs.CHECKSUMS).unlink()  # a folder from save_pretrained, say: only the loader can tell
    path = run_copy / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\xff" * 16 + data[16:])
    code, _, err = in_process(capsys, "generate", "--model", run_copy, "a b c")
    line = one_line(err)
    assert code == 1 and str(path) in line and "corrupted" in line


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_only_checkpoint_is_refused_unopened(run_copy, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (run_copy / "model.safetensors").unlink()
    (run_copy / runs.CHECKSUMS).unlink()
    with open(run_copy / "pytorch_model.bin", "wb") as handle:
        pickle.dump(_Payload(), handle)
    code, _, err = in_process(capsys, "generate", "--model", run_copy, "a b c")
    line = one_line(err)
    assert code == 1 and "pytorch_model.bin" in line and "pickle" in line
    assert not (tmp_path / "pwned").exists()


def test_disk_full_while_saving_keeps_the_checkpoint_and_resume_finishes(pairs, tmp_path, capsys, monkeypatch):
    from miniformer_hf import training

    def no_space(self, output_dir):
        raise OSError(errno.ENOSPC, "No space left on device", str(output_dir))

    output_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(training.TransformerTrainer, "save_model", no_space)
        code, _, err = in_process(capsys, *train_argv(pairs, output_dir))
    line = one_line(err)
    assert code == 1 and "disk full" in line and "checkpoint-4" in line and "--resume" in line
    assert not output_dir.exists()
    code, _, err = in_process(capsys, *train_argv(pairs, output_dir), "--resume")
    assert code == 0, err
    assert json.loads((output_dir / "metrics.json").read_text())["max_steps"] == 4


def test_disk_full_while_saving_the_optimizer_is_one_line_and_earlier_checkpoints_survive(pairs, tmp_path, capsys):
    # 23.12: torch.save of the optimizer state fails for lack of space at the second checkpoint.
    import torch

    real_save = torch.save

    def save_until_full(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and os.fspath(f).endswith(os.path.join("checkpoint-4", "optimizer.pt")):
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(f))
        return real_save(obj, f, *args, **kwargs)

    output_dir = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "save", save_until_full)
        code, out, err = in_process(capsys, *train_argv(pairs, output_dir))
    line = one_line(err)
    assert code == 1 and out == ""
    assert line.startswith("miniformer train: error: disk full (no space left on the device while writing ")
    assert "optimizer.pt" in line and "checkpoint-2, is kept" in line and "--resume" in line
    assert "nothing was published" in line
    assert not output_dir.exists()
    kept = tmp_path / f"run{runs.INCOMPLETE_SUFFIX}" / runs.CHECKPOINTS / "checkpoint-2"
    assert (kept / "optimizer.pt").is_file() and (kept / runs.WEIGHTS_FILE).is_file()
    assert not (kept.parent / "checkpoint-4").exists()  # the half-written checkpoint was never published


def test_visualize_on_a_folder_without_config(tmp_path, capsys):
    code, _, err = in_process(capsys, "visualize", "--model", tmp_path, "a b c", "--out", tmp_path / "views")
    assert code == 1 and "no config.json" in one_line(err)


def test_generate_checks_lengths_and_empty_text_before_generating(finished, capsys, tmp_path):
    code, out, err = in_process(capsys, "generate", "--model", finished, "--max-new-tokens", "2000", "a b c")
    line = one_line(err)
    assert code == 1 and out == "" and "positional table" in line and "1024" in line
    assert "Shorten the input" not in line
    code, out, err = in_process(capsys, "generate", "--model", finished, "")
    assert code == 1 and out == "" and "empty" in one_line(err)
    views = tmp_path / "views"
    code, _, err = in_process(capsys, "visualize", "--model", finished, "", "--out", views)
    assert code == 1 and "empty" in one_line(err)
    code, _, err = in_process(capsys, "visualize", "--model", finished, "a b", "--out", views, "--max-new-tokens", 2000)
    assert code == 1 and "positional table" in one_line(err) and not views.exists()
    code, out, err = in_process(capsys, "generate", "--model", finished, "--max-new-tokens", "1", "a b c d e f")
    assert code == 0 and len(out.splitlines()) == 1
    assert "cut at the generation length of 1" in one_line(err)


# ---------------------------------------------------------------------------------------------
# Issue 23: averaging, checksums, generation options, Ctrl-C during imports
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def two_checkpoints(cli_run):
    """A run of the real command that keeps its last two checkpoints (checkpoint-2, checkpoint-4). Read only."""
    assert sorted(os.listdir(cli_run / runs.CHECKPOINTS)) == ["checkpoint-2", "checkpoint-4"]
    return cli_run


def test_average_in_a_fresh_process_loads_its_own_checkpoints_without_a_prompt(two_checkpoints, run_together):
    # 23.8: no trust_remote_code prompt (stdin closed: a prompt would fail) for the package's own run folders.
    folder, result = run_together["average in a fresh process"]
    assert result["code"] == 0, result["stderr"]
    assert "trust_remote_code" not in result["stderr"] and (folder / "avg" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_live_run_refuses_average_and_ctrl_c_keeps_the_last_checkpoint_and_resume_finishes(
        two_checkpoints, pairs, tmp_path, capsys):
    """One live `miniformer train` (the console script) for two cases: 23.1, `miniformer average --output-dir X`
    refused while the run holds the lock of X.incomplete; then a real Ctrl-C keeps its last checkpoint, and
    --resume finishes the run."""
    import signal
    import time

    output_dir = tmp_path / "run"
    staging = tmp_path / ("run" + runs.INCOMPLETE_SUFFIX)
    # Checkpoints every 2 steps: the first one comes early and the run is far from done when it is stopped.
    argv = train_argv(pairs, output_dir, steps=24)
    executable = shutil.which("miniformer")
    command = [executable] if executable else [sys.executable, "-m", "miniformer_hf.cli"]
    process = subprocess.Popen([*command, *map(str, argv)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while process.poll() is None and time.time() < deadline and runs.live_run_pid(staging) is None:
            time.sleep(0.05)
        assert runs.live_run_pid(staging) == str(process.pid)
        for flag in ([], ["--overwrite"]):
            # This process asks; the lock is held by the real training process beside it.
            code, _, err = in_process(capsys, "average", "--model", two_checkpoints, "--last", "2", "--output-dir",
                                      output_dir, *flag)  # fmt: skip
            line = one_line(err)
            assert code == 1 and f"PID {process.pid}" in line, line
            assert not output_dir.exists() and runs.live_run_pid(staging) == str(process.pid)
            assert (staging / runs.RUN_ARGUMENTS).is_file() or (staging / "tokenizer.json").is_file()

        while process.poll() is None and time.time() < deadline and not runs.has_checkpoint(staging):
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    line = one_line(err)
    assert "interrupted" in line and "--resume" in line and "checkpoint-" in line
    assert runs.has_checkpoint(staging) and not output_dir.exists()
    assert runs.live_run_pid(staging) is None  # the lock went with the process

    code, _, err = in_process(capsys, *argv, "--resume")  # what the checkpoint holds, not the process, matters here
    assert code == 0, err
    assert json.loads((output_dir / "metrics.json").read_text())["max_steps"] == 24


def test_average_never_replaces_an_interrupted_run_or_a_folder_that_is_not_a_run(two_checkpoints, tmp_path, capsys):
    output_dir = tmp_path / "run"
    staging = tmp_path / ("run" + runs.INCOMPLETE_SUFFIX)
    (staging / runs.CHECKPOINTS / "checkpoint-2").mkdir(parents=True)
    (staging / runs.CHECKPOINTS / "checkpoint-2" / "optimizer.pt").write_bytes(b"state")
    before = tree(staging)
    code, _, err = in_process(capsys, "average", "--model", two_checkpoints, "--last", "2", "--output-dir", output_dir,
                              "--overwrite")  # fmt: skip
    assert code == 1 and "interrupted training run" in one_line(err)
    assert tree(staging) == before and not output_dir.exists()

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    code, _, err = in_process(capsys, "average", "--model", two_checkpoints, "--last", "2", "--output-dir", notes,
                              "--overwrite")  # fmt: skip
    assert code == 1 and "not a Miniformer run folder" in one_line(err)
    assert tree(notes) == {"todo.txt": hashlib.sha256(b"mine").hexdigest()}


def test_average_refuses_checkpoints_of_two_runs_and_names_a_truncated_checkpoint(two_checkpoints, tmp_path, capsys):
    # 23.11
    other = tmp_path / "other"
    shutil.copytree(two_checkpoints, other)
    arguments = json.loads((other / runs.RUN_ARGUMENTS).read_text())
    arguments["data_fingerprint"] = "sha256:" + "0" * 64  # trained on other data
    (other / runs.RUN_ARGUMENTS).write_text(json.dumps(arguments))
    mixed = [two_checkpoints / runs.CHECKPOINTS / "checkpoint-2", other / runs.CHECKPOINTS / "checkpoint-4"]
    code, _, err = in_process(capsys, "average", "--model", two_checkpoints, "--checkpoints", *mixed,
                              "--output-dir", tmp_path / "mixed")  # fmt: skip
    line = one_line(err)
    assert code == 1 and "different runs" in line and "data_fingerprint" in line
    assert not (tmp_path / "mixed").exists()

    weights = other / runs.CHECKPOINTS / "checkpoint-4" / runs.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:1000])
    code, _, err = in_process(capsys, "average", "--model", other, "--last", "2", "--output-dir", tmp_path / "cut")
    line = one_line(err)
    assert code == 1 and str(weights) in line and "truncated" in line


@pytest.mark.parametrize("record", ["[]", '"sha256:0"', "{}"])
def test_a_malformed_checksums_record_with_damaged_weights_gives_one_line(run_copy, record, capsys):
    # 23.12 and 23.6: a list, a string or {} is one line naming checksums.json (from_pretrained's verdict too).
    (run_copy / runs.CHECKSUMS).write_text(record)
    weights = run_copy / runs.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-64] + b"\x00\x00\xc0\x7f" * 16)  # NaN (float32) in the last tensor
    code, out, err = in_process(capsys, "generate", "--model", run_copy, "a b c")
    line = one_line(err)
    assert code == 1 and out == ""
    assert "checksums.json" in line and "Traceback" not in err


def test_generation_options_are_checked_at_parse_time_and_said_right(finished, tmp_path, capsys):
    # 23.14: the warning names the asked length (3), not the source length.
    code, out, err = in_process(capsys, "generate", "--model", finished, "a b c d e f a b c", "--max-new-tokens", "3")
    assert code == 0 and out.count("\n") == 1
    assert "generation length of 3 tokens" in err or err == ""
    for flags in (["--max-new-tokens", "-1"], ["--num-beams", "0"]):
        out_dir = tmp_path / "views"
        code, _, err = in_process(capsys, "visualize", "--model", finished, "a b c", "--out", out_dir, *flags)
        assert code == 2 and flags[0] in one_line(err) and not out_dir.exists()
    code, _, err = in_process(capsys, "train", "--seed", "-1", "--output-dir", tmp_path / "seed")
    assert code == 2 and "--seed" in one_line(err) and not (tmp_path / "seed").exists()


def test_ctrl_c_while_the_libraries_load_is_one_line(finished):
    # 23.17: a real SIGINT, delivered while `miniformer generate` imports torch.
    script = (
        "import os, signal, sys\n"
        "sys.argv[0] = 'miniformer'  # as the console script starts: the libraries load when the command runs\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from miniformer_hf.cli import main\n"
        f"sys.exit(main(['generate', '--model', {str(finished)!r}, 'a b c']))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode == 130, result.stderr
    assert one_line(result.stderr) == "miniformer generate: interrupted"
