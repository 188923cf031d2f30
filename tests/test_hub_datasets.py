"""`miniformer train --dataset` against a Hub: the local Hub server (tests/hub_server.py) serves dataset
repositories of parquet files written here, and the real `datasets`/`huggingface_hub` clients reach it
through HF_ENDPOINT. No internet is needed."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hub_server import HubServer

REPO = "you/tiny-pairs"
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
FRENCH = ["un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit"]


def parquet(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def translation_rows(count: int, offset: int = 0) -> list[dict]:
    return [
        {"translation": {"en": f"{WORDS[i % 8]} {WORDS[(i // 8) % 8]}", "fr": f"{FRENCH[i % 8]} {FRENCH[(i // 8) % 8]}"}}
        for i in range(offset, offset + count)
    ]


@pytest.fixture(scope="module")
def hub():
    with HubServer() as server:
        files = {
            "data/train-00000-of-00001.parquet": parquet(translation_rows(48)),
            "data/validation-00000-of-00001.parquet": parquet(translation_rows(8, offset=48)),
            "data/test-00000-of-00001.parquet": parquet(translation_rows(8, offset=56)),
        }
        server.first_commit = server.add_files(REPO, files, repo_type="dataset")
        # A second revision with a bigger train split: --dataset-revision must pick the first one.
        server.add_files(REPO, {"data/train-00000-of-00001.parquet": parquet(translation_rows(56))}, "dataset")
        server.add_files("you/empty-test", {**files, "data/test-00000-of-00001.parquet": parquet(
            [{"translation": {"en": "", "fr": ""}}])}, "dataset")  # fmt: skip
        server.add_files("you/split-columns", {**files, "data/validation-00000-of-00001.parquet": parquet(
            [{"english": "one", "french": "un"}])}, "dataset")  # fmt: skip
        server.add_files("you/number-targets", {"data/train-00000-of-00001.parquet": parquet(
            [{"source": f"s{i}", "target": i} for i in range(20)])}, "dataset")  # fmt: skip
        yield server
        assert server.unhandled == [], f"the client called routes the local hub does not serve: {server.unhandled}"


def hub_env(hub: HubServer, home: Path) -> dict:
    """The environment of a `miniformer` process that reaches ``hub`` as the Hub, with ``home`` its HF_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_OFFLINE="0", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
    )  # fmt: skip
    return env


TRAIN = ["train", "--size", "tiny", "--max-steps", "4", "--eval-steps", "4", "--eval-samples", "4", "--no-visualize", "-q",
         "--threads", "1"]  # fmt: skip


BAD_INPUT = {
    "unknown dataset": (["--dataset", "you/no-such-dataset", "--source-lang", "en", "--target-lang", "fr"],
                        "dataset not found"),
    "missing language": (["--dataset", REPO, "--source-lang", "en", "--target-lang", "de"],
                         r"language\(s\) \['de'\] not in"),
    "empty split": (["--dataset", "you/empty-test", "--source-lang", "en", "--target-lang", "fr"],
                    "split 'test' is empty"),
    "wrong column type": (["--dataset", "you/number-targets"], r"column 'target' has type Value\('int64'\)"),
    "split columns differ": (["--dataset", "you/split-columns", "--source-lang", "en", "--target-lang", "fr"],
                             r"validation-00000-of-00001.parquet: its columns \['english', 'french'\] differ"),
    "revision of a local folder": (["--dataset", ".", "--dataset-revision", "main"], "a revision only applies to a Hub"),
}  # fmt: skip

@pytest.fixture(scope="module")
def hub_commands(hub, tmp_path_factory) -> dict:
    """`miniformer train` on the local Hub's datasets: the run on the translation layout, then every BAD_INPUT
    command (each with its own output folder "runs/<name>" in one shared working folder), all in one Python
    process as `python -m miniformer_hf.cli` runs each (tests/cli_runner.py: imports are the slow part).
    name -> (working folder, {code, stdout, stderr})."""
    from cli_runner import run_commands

    good, bad = tmp_path_factory.mktemp("hub-train"), tmp_path_factory.mktemp("hub-bad-input")
    commands = {"translation layout": (good, [
        *TRAIN, "--dataset", REPO, "--source-lang", "en", "--target-lang", "fr", "--dataset-revision", hub.first_commit,
        "--output-dir", str(good / "runs" / "tiny-pairs")])}  # fmt: skip
    for name, (arguments, _) in BAD_INPUT.items():
        commands[name] = (bad, [*TRAIN, *arguments, "--output-dir", str(bad / "runs" / name.replace(" ", "-"))])
    home = tmp_path_factory.mktemp("hub-hf-home")
    results = run_commands(commands, env=hub_env(hub, home), timeout=300)
    return {name: (folder, results[name]) for name, (folder, _) in commands.items()}


def test_train_on_a_hub_dataset_in_the_translation_layout(hub, hub_commands):
    folder, result = hub_commands["translation layout"]
    run = folder / "runs" / "tiny-pairs"
    assert result["code"] == 0, result["stderr"][-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_samples"] == 48  # the first revision's train split, not the newer one (56)
    assert metrics["num_evaluated"] == {"validation": 4, "test": 4}
    assert (metrics["dataset"], metrics["dataset_revision"], metrics["dataset_languages"]) == (
        REPO, hub.first_commit, ["en", "fr"])  # fmt: skip
    assert (run / "model.safetensors").is_file() and (run / "tokenizer.json").is_file()
    tokenizer = json.loads((run / "tokenizer.json").read_text())
    vocabulary = "".join(tokenizer["model"]["vocab"])
    assert "q" in vocabulary and "x" in vocabulary  # "quatre", "deux": the target side trained the tokenizer too
    # Read from the Hub at the pinned revision (the bad commands that ran beside it ask for no revision).
    assert any(f"/datasets/you/tiny-pairs/resolve/{hub.first_commit}/" in path for _, path, _ in hub.request_log)


def test_bad_dataset_input_fails_before_training_and_writes_nothing(hub_commands):
    import re

    for name, (_, message) in BAD_INPUT.items():
        folder, result = hub_commands[name]
        code, stderr = result["code"], result["stderr"]
        errors = [line for line in stderr.splitlines() if "error" in line.lower()]
        assert code == 1, (name, stderr)
        assert len(errors) == 1 and errors[0].startswith("miniformer train: error:"), (name, stderr)
        assert re.search(message, errors[0]) and "expected" in errors[0], (name, errors[0])
        assert "Traceback" not in stderr, (name, stderr)
    assert not (folder / "runs").exists()  # no run folder, no .incomplete folder, for any of them


def test_streaming_trains_from_a_stream_and_resumes(tmp_path, capsys, monkeypatch):
    """--streaming: the tokenizer learns from the first --tokenizer-sample pairs only, training reads the
    stream, --max-steps is required, and --resume continues to the same weights as an uninterrupted run."""
    from miniformer_hf import cli

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "pairs" / "data"
    folder.mkdir(parents=True)
    late = [{"translation": {"en": f"zebra {WORDS[i % 8]}", "fr": f"zèbre {FRENCH[i % 8]}"}} for i in range(34)]
    (folder / "train-00000-of-00001.parquet").write_bytes(parquet(translation_rows(30) + late))

    def train(output: str, *extra: str) -> int:
        return cli.main(["train", "--dataset", str(tmp_path / "pairs"), "--source-lang", "en", "--target-lang", "fr",
                         "--streaming", "--tokenizer-sample", "16", "--size", "tiny", "--batch-size", "8",
                         "--eval-steps", "4", "--eval-samples", "6", "--no-visualize", "-q", "--threads", "1", "--output-dir",
                         str(tmp_path / output), *extra])  # fmt: skip

    assert train("no-steps") == 2  # a stream has no length: --max-steps is required
    assert "--streaming needs --max-steps" in capsys.readouterr().err and not (tmp_path / "no-steps").exists()

    assert train("resumed", "--max-steps", "4") == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["max_steps"] == 4 and metrics["train_samples"] is None
    assert metrics["num_evaluated"] == {"validation": 6, "test": 6}  # the first 6 pairs, held out of the stream
    vocabulary = set(json.loads((tmp_path / "resumed" / "tokenizer.json").read_text())["model"]["vocab"])
    assert {"o", "n", "e", "u"} <= vocabulary and "z" not in vocabulary  # pairs 6-21 only, none of the zebras

    assert train("resumed", "--max-steps", "8", "--resume") == 0, capsys.readouterr().err
    assert train("straight", "--max-steps", "8") == 0, capsys.readouterr().err
    resumed, straight = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("resumed", "straight"))
    assert resumed["max_steps"] == straight["max_steps"] == 8
    assert (tmp_path / "resumed" / "model.safetensors").read_bytes() == (tmp_path / "straight" / "model.safetensors").read_bytes()


def test_a_hub_dataset_identity_names_the_commit_its_revision_resolves_to(hub, monkeypatch):
    """`dataset_identity` asks the Hub which commit a revision is now: the pinned first commit stays
    itself, ``main`` is the newest commit, and the two fingerprints differ."""
    from huggingface_hub import constants

    from miniformer_hf.data import dataset_identity

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    pinned = dataset_identity(REPO, revision=hub.first_commit)
    newest = dataset_identity(REPO)
    assert (pinned["kind"], pinned["repo"], pinned["commit"], pinned["resolved"]) == ("hub", REPO, hub.first_commit, True)
    assert newest["resolved"] and newest["commit"] != hub.first_commit and newest["revision"] is None
    assert pinned["fingerprint"] != newest["fingerprint"]
    assert dataset_identity(REPO, revision=hub.first_commit)["fingerprint"] == pinned["fingerprint"]
