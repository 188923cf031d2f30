"""Tests for miniformer_hf.data: datasets from dataset folders, save_to_disk folders and data files (the Hub
itself: test_hub_datasets.py), bad datasets said in one line by `miniformer train`, and dataset identities.
The built-in tasks are tested in test_tasks.py, text-pair files in test_text_pairs.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import DatasetDict

from miniformer_hf.data import DataError, load_dataset_pairs


# ---------------------------------------------------------------------------------------------
# Datasets from the Hub, dataset folders and save_to_disk folders (the Hub itself: test_hub_datasets.py)
# ---------------------------------------------------------------------------------------------


def translation_rows(count: int, start: int = 0) -> list[dict]:
    return [{"translation": {"en": f"one {i}", "fr": f"un {i}"}, "id": str(i)} for i in range(start, start + count)]


def write_parquet(folder, split: str, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / f"{split}-00000-of-00001.parquet")


def test_dataset_folder_in_the_translation_layout_keeps_its_splits(tmp_path):
    write_parquet(tmp_path / "pairs" / "data", "train", translation_rows(30))
    write_parquet(tmp_path / "pairs" / "data", "validation", translation_rows(4, start=100))
    write_parquet(tmp_path / "pairs" / "data", "test", translation_rows(3, start=200))
    pairs = load_dataset_pairs(str(tmp_path / "pairs"), source_lang="en", target_lang="fr")
    assert {name: len(split) for name, split in pairs.items()} == {"train": 30, "validation": 4, "test": 3}
    assert pairs["test"].column_names == ["source", "target"]
    assert pairs["test"][0] == {"source": "one 200", "target": "un 200"}
    reverse = load_dataset_pairs(str(tmp_path / "pairs"), source_lang="fr", target_lang="en")
    assert reverse["validation"][1] == {"source": "un 101", "target": "one 101"}


def test_save_to_disk_folder_with_plain_columns_and_a_validation_percentage(tmp_path):
    from datasets import Dataset

    rows = {"question": [f"q{i}" for i in range(40)] + [""], "answer": [f"a{i}" for i in range(40)] + ["dropped"]}
    DatasetDict(train=Dataset.from_dict(rows)).save_to_disk(tmp_path / "saved")
    saved_files = sorted(path.relative_to(tmp_path) for path in (tmp_path / "saved").rglob("*"))
    pairs = load_dataset_pairs(
        str(tmp_path / "saved"), source_column="question", target_column="answer", validation_split_percentage=25
    )
    assert (len(pairs["train"]), len(pairs["validation"])) == (30, 10)  # the empty question is dropped first
    assert "test" not in pairs
    together = sorted((row["source"], row["target"]) for split in pairs.values() for row in split)
    assert together == sorted((f"q{i}", f"a{i}") for i in range(40))
    again = load_dataset_pairs(
        str(tmp_path / "saved"), source_column="question", target_column="answer", validation_split_percentage=25
    )
    assert list(again["validation"]["source"]) == list(pairs["validation"]["source"])  # seeded
    assert sorted(path.relative_to(tmp_path) for path in (tmp_path / "saved").rglob("*")) == saved_files  # untouched


def test_streaming_reads_pairs_and_holds_out_the_first_examples(tmp_path):
    write_parquet(tmp_path / "pairs" / "data", "train", translation_rows(20))
    pairs = load_dataset_pairs(
        str(tmp_path / "pairs"), source_lang="en", target_lang="fr", streaming=True, validation_examples=3
    )
    assert [row["source"] for row in pairs["validation"]] == ["one 0", "one 1", "one 2"]
    assert [row for row in pairs["train"]][:2] == [{"source": "one 3", "target": "un 3"}, {"source": "one 4", "target": "un 4"}]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(source_lang="en", target_lang="de"), r"language\(s\) \['de'\] not in the translation column.*\['en', 'fr'\]"),
        (dict(source_lang="en"), "only one of --source-lang/--target-lang"),
        (dict(), r"no column 'source'.*pass --source-lang and --target-lang"),
        (dict(source_column="id", target_column="translation"), r"column 'translation' has type .*column of strings"),
        (dict(source_lang="en", target_lang="fr", config="nope"), "cannot load the dataset"),
    ],
)
def test_bad_dataset_requests_raise_one_line_data_errors(tmp_path, kwargs, message):
    write_parquet(tmp_path / "pairs" / "data", "train", translation_rows(10))
    with pytest.raises(DataError, match=message) as raised:
        load_dataset_pairs(str(tmp_path / "pairs"), **kwargs)
    assert "\n" not in str(raised.value) and "expected" in str(raised.value)


def test_empty_split_and_unknown_dataset_are_data_errors(tmp_path):
    write_parquet(tmp_path / "pairs" / "data", "train", translation_rows(10))
    write_parquet(tmp_path / "pairs" / "data", "test", [{"translation": {"en": "", "fr": ""}, "id": "0"}])
    with pytest.raises(DataError, match="split 'test' is empty"):
        load_dataset_pairs(str(tmp_path / "pairs"), source_lang="en", target_lang="fr")
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset_pairs(str(tmp_path / "no-such-folder"), source_lang="en", target_lang="fr")



# ---------------------------------------------------------------------------------------------
# Issue 23 item 9: datasets that cannot be used, each said in one line
# ---------------------------------------------------------------------------------------------


def plain_rows(count: int, source: str = "source", target: str = "target") -> list[dict]:
    return [{source: f"s{i}", target: f"t{i}"} for i in range(count)]


def save_with_empty_validation(folder) -> None:
    from datasets import Dataset

    empty = Dataset.from_dict({"source": [], "target": []})
    DatasetDict(train=Dataset.from_list(plain_rows(20)), validation=empty).save_to_disk(folder)


def json_folder_with_a_bad_line(folder) -> None:
    import json

    folder.mkdir(parents=True)
    lines = [json.dumps(row) for row in plain_rows(20)] + ['{"source": "x",']
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def folder_with_split_columns(folder) -> None:
    write_parquet(folder, "train", plain_rows(20))
    write_parquet(folder, "validation", plain_rows(5, "src", "tgt"))


def parquet_file(path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(plain_rows(30)), path)


@pytest.mark.parametrize("streaming", [False, True])
def test_an_empty_saved_validation_split_is_named(tmp_path, streaming):
    save_with_empty_validation(tmp_path / "saved")
    with pytest.raises(DataError, match=r"saved: split 'validation' is empty \(saved with no rows\)"):
        load_dataset_pairs(str(tmp_path / "saved"), streaming=streaming)


def test_a_malformed_json_line_in_a_dataset_folder_is_named_with_its_file_and_line(tmp_path):
    json_folder_with_a_bad_line(tmp_path / "pairs")
    with pytest.raises(DataError, match=r"pairs/train.jsonl: line 21 is not valid JSON") as raised:
        load_dataset_pairs(str(tmp_path / "pairs"))
    assert "\n" not in str(raised.value)


def test_split_files_with_different_columns_are_named(tmp_path):
    folder_with_split_columns(tmp_path / "pairs")
    message = r"validation-00000-of-00001.parquet: its columns \['src', 'tgt'\] differ .* \['source', 'target'\]"
    for streaming in (False, True):
        with pytest.raises(DataError, match=message):
            load_dataset_pairs(str(tmp_path / "pairs"), streaming=streaming)


def test_a_parquet_file_is_loaded_and_a_text_pair_file_is_sent_to_train_file(tmp_path):
    parquet_file(tmp_path / "pairs.parquet")
    pairs = load_dataset_pairs(str(tmp_path / "pairs.parquet"), validation_split_percentage=10)
    assert (len(pairs["train"]), len(pairs["validation"])) == (27, 3)
    streamed = load_dataset_pairs(str(tmp_path / "pairs.parquet"), streaming=True, validation_examples=2)
    assert list(streamed["validation"]) == [{"source": "s0", "target": "t0"}, {"source": "s1", "target": "t1"}]
    (tmp_path / "pairs.csv").write_text("source,target\na,b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"a \.csv file given to --dataset; expected --train-file"):
        load_dataset_pairs(str(tmp_path / "pairs.csv"))


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("pairs", dict(revision="main"), "--dataset-revision 'main' given with a local folder; a revision only applies"),
        ("pairs.parquet", dict(revision="v1"), "given with a local file"),
        ("saved", dict(revision="v1"), "given with a local folder"),
        ("pairs.parquet", dict(config="x"), "a single data file has no configurations"),
        ("saved", dict(config="x"), "a save_to_disk folder has no configurations"),
        ("missing/folder/x", dict(), "no such file or folder"),
        ("./missing", dict(), "no such file or folder"),
        ("missing.parquet", dict(), "no such file or folder"),
        ("   ", dict(), "the dataset name is empty"),
    ],
)
def test_local_dataset_requests_that_cannot_apply_are_refused(tmp_path, monkeypatch, name, kwargs, message):
    from datasets import Dataset

    monkeypatch.chdir(tmp_path)
    write_parquet(tmp_path / "pairs" / "data", "train", plain_rows(10))
    parquet_file(tmp_path / "pairs.parquet")
    Dataset.from_list(plain_rows(10)).save_to_disk(tmp_path / "saved")
    with pytest.raises(DataError, match=message) as raised:
        load_dataset_pairs(name, **kwargs)
    assert "\n" not in str(raised.value) and "; expected " in str(raised.value)


def test_a_streamed_json_folder_is_typed_from_its_first_rows(tmp_path):
    import json

    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in plain_rows(12)))
    pairs = load_dataset_pairs(str(tmp_path / "pairs"), streaming=True, validation_examples=2)
    assert [row["source"] for row in pairs["validation"]] == ["s0", "s1"] and len(list(pairs["train"])) == 10


# ---------------------------------------------------------------------------------------------
# The same through `miniformer train`: exit 1, one stderr line, nothing written
# ---------------------------------------------------------------------------------------------

# name: (make the input under the temporary folder, the data flags, what the one stderr line says)
BAD_TRAIN_DATA = {
    "empty saved validation": (save_with_empty_validation, ["--dataset", "data"], "split 'validation' is empty"),
    "empty saved validation streamed": (
        save_with_empty_validation, ["--dataset", "data", "--streaming"], "split 'validation' is empty"),
    "malformed json line": (json_folder_with_a_bad_line, ["--dataset", "data"], "data/train.jsonl: line 21 is not valid JSON"),
    "split columns differ": (folder_with_split_columns, ["--dataset", "data"], r"its columns \['src', 'tgt'\] differ"),
    "revision of a local folder": (
        folder_with_split_columns, ["--dataset", "data", "--dataset-revision", "v1"], "a revision only applies to a Hub"),
    "unquoted comma": (
        lambda path: path.write_text("source,target\na,b\nhello, world,bonjour, monde\n"),
        ["--train-file", "data.csv"], "data.csv: line 3 has 4 field.s. but the header has 2"),
    "extra field": (lambda path: path.write_text("source,target\na,b,c\nd,e\n"),
                    ["--train-file", "data.csv"], "data.csv: line 2 has 3 field.s."),
    "unclosed quote": (lambda path: path.write_text('source,target\na,b\n"c,d\ne,f\ng,h\n'),
                       ["--train-file", "data.csv"], "data.csv: line 3: a quoted field opens on this line and is never closed"),
}  # fmt: skip

# One thread: tests share the machine, and a run's threads waiting for busy cores make it many times slower.
TRAIN = ["train", "--size", "tiny", "--max-steps", "2", "--eval-samples", "2", "--no-visualize", "-q", "--threads", "1",
         "--output-dir", "runs/run"]  # fmt: skip


def run_commands(commands: dict, tmp_path) -> dict:
    """Each command in turn in one Python process (tests/cli_runner.py: imports are the slow part), as
    `python -m miniformer_hf.cli train ...` runs it: its exit status and what reached stderr."""
    import os

    from cli_runner import run_commands as run_in_one_process

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "OMP_NUM_THREADS": "1"}
    return run_in_one_process(commands, env=env, cwd=tmp_path)


def test_bad_data_fail_train_with_one_line_exit_1_and_nothing_written(tmp_path):
    import json
    import re

    commands = {}
    for name, (make, arguments, _) in BAD_TRAIN_DATA.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        make(folder / ("data.csv" if "--train-file" in arguments else "data"))
        commands[name] = (str(folder), [*TRAIN, *arguments])
    # A .parquet file given to --dataset is loaded (it was told "the Hub cannot be reached").
    (tmp_path / "data").mkdir()
    parquet_file(tmp_path / "data" / "pairs.parquet")
    commands["parquet file"] = (str(tmp_path), [*TRAIN, "--dataset", "data/pairs.parquet"])

    results = run_commands(commands, tmp_path)
    for name, (_, _, message) in BAD_TRAIN_DATA.items():
        code, stderr = results[name]["code"], results[name]["stderr"]
        lines = stderr.strip().splitlines()
        assert code == 1 and len(lines) == 1, (name, code, stderr[-3000:])
        assert lines[0].startswith("miniformer train: error: ") and re.search(message, lines[0]), (name, lines[0])
        assert "; expected " in lines[0], (name, lines[0])
        folder = tmp_path / name.replace(" ", "-")
        assert not (folder / "runs").exists(), (name, sorted(p.name for p in folder.rglob("*")))
    assert results["parquet file"]["code"] == 0, results["parquet file"]["stderr"][-3000:]
    assert (tmp_path / "runs" / "run" / "model.safetensors").is_file()
    # Named as a local file, not taken for a Hub id ("data/pairs.parquet" has the owner/name shape).
    metrics = json.loads((tmp_path / "runs" / "run" / "metrics.json").read_text())
    assert metrics["dataset"] == "pairs.parquet (local file)" and metrics["train_samples"] == 28
    assert "datasets:" not in (tmp_path / "runs" / "run" / "README.md").read_text().split("---")[1]  # no Hub link


def test_the_real_command_exits_1_with_the_same_line(tmp_path):
    """One case as its own process, `python -m miniformer_hf.cli`: the exit status and stderr that the
    in-process runs above stand for."""
    import os
    import subprocess
    import sys

    (tmp_path / "data.csv").write_text("source,target\na,b\nhello, world,bonjour, monde\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run([sys.executable, "-m", "miniformer_hf.cli", *TRAIN, "--train-file", "data.csv"], env=env,
                               cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        "miniformer train: error: data.csv: line 3 has 4 field(s) but the header has 2; expected one field per header "
        'column; quote a field that contains the delimiter ("hello, world","bonjour, monde")'
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data.csv"]


# ---------------------------------------------------------------------------------------------
# What a dataset source is
# ---------------------------------------------------------------------------------------------


def test_a_local_dataset_identity_changes_when_a_file_does_even_with_the_same_size_and_time(tmp_path):
    import os

    from miniformer_hf.data import dataset_identity

    write_parquet(tmp_path / "pairs" / "data", "train", plain_rows(10))
    (tmp_path / "pairs" / ".cache").mkdir()  # hidden: not part of the data
    (tmp_path / "pairs" / ".cache" / "x").write_text("1")
    first = dataset_identity(str(tmp_path / "pairs"))
    assert first["kind"] == "local" and first["path"] == os.path.realpath(tmp_path / "pairs")
    assert [entry["path"] for entry in first["files"]] == [os.path.join("data", "train-00000-of-00001.parquet")]
    assert dataset_identity(str(tmp_path / "pairs"))["fingerprint"] == first["fingerprint"]
    (tmp_path / "pairs" / ".cache" / "x").write_text("2")
    assert dataset_identity(str(tmp_path / "pairs"))["fingerprint"] == first["fingerprint"]

    data_file = tmp_path / "pairs" / "data" / "train-00000-of-00001.parquet"
    stat = data_file.stat()
    content = bytearray(data_file.read_bytes())
    content[-20] ^= 1  # one bit, same size, same modification time
    data_file.write_bytes(bytes(content))
    os.utime(data_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dataset_identity(str(tmp_path / "pairs"))["fingerprint"] != first["fingerprint"]

    single = dataset_identity(str(data_file))
    assert [entry["path"] for entry in single["files"]] == ["train-00000-of-00001.parquet"]


def test_a_hub_dataset_identity_offline_is_marked_unresolved():
    from miniformer_hf.data import dataset_identity

    identity = dataset_identity("you/some-pairs", revision="v1")  # HF_HUB_OFFLINE=1 in the tests
    assert (identity["kind"], identity["repo"], identity["revision"]) == ("hub", "you/some-pairs", "v1")
    assert identity["commit"] is None and identity["resolved"] is False
    assert dataset_identity("you/some-pairs", revision="v2")["fingerprint"] != identity["fingerprint"]
    with pytest.raises(DataError, match="is empty"):
        dataset_identity("")


def test_a_saved_dataset_without_train_names_its_splits_and_unused_splits_are_not_read(tmp_path):
    from datasets import Dataset

    rows = Dataset.from_list(plain_rows(10))
    DatasetDict(dev=rows, extra=rows.select([])).save_to_disk(tmp_path / "no-train")
    with pytest.raises(DataError, match=r"no 'train' split \(splits: \['dev', 'extra'\]\)"):
        load_dataset_pairs(str(tmp_path / "no-train"))
    DatasetDict(train=rows, extra=rows.select([])).save_to_disk(tmp_path / "extra")  # an empty split nobody uses
    assert len(load_dataset_pairs(str(tmp_path / "extra"), validation_split_percentage=20)["train"]) == 8


@pytest.mark.parametrize(
    "content, message",
    [
        (b"source,target\na,b\nhello, world,bonjour, monde\n", "line 3 has 4 field.s. but the header has 2"),
        (b'source,target\na,b\n"c,d\ne,f\n', "line 3: a quoted field opens on this line and is never closed"),
        (b"source,target\ncaf\xe9,coffee\na,b\n", "undecodable byte 0xe9 at byte offset 17"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_a_malformed_csv_in_a_dataset_folder_is_named_as_train_file_names_it(tmp_path, content, message, streaming):
    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "train.csv").write_bytes(content)
    with pytest.raises(DataError, match=f"pairs/train.csv: {message}"):
        load_dataset_pairs(str(tmp_path / "pairs"), streaming=streaming)
