"""Tests for miniformer_hf.data: built-in tasks and loading users' text pairs."""

from __future__ import annotations

import datetime
import json
import logging
import time

import babel
import pytest
from datasets import DatasetDict

from miniformer_hf.data import (
    BUILTIN_TASKS,
    DEFAULT_LOCALES,
    MAX_GENERATED_EXAMPLES,
    MAX_TEXT_CHARACTERS,
    DataError,
    load_dataset_pairs,
    load_task,
    load_text_pairs,
    make_date_dataset,
    make_toy_dataset,
)


# ---------------------------------------------------------------------------------------------
# Date task
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dates() -> DatasetDict:
    return make_date_dataset(num_train=20_000, num_validation=2_000, num_test=2_000, seed=0)


def test_babel_is_the_pinned_version():
    # Locale data changes the strings, so the task is only reproducible with the pinned babel.
    assert babel.__version__ == "2.19.0"


def test_date_splits_have_the_requested_sizes_and_columns(dates):
    assert {name: len(split) for name, split in dates.items()} == {"train": 20_000, "validation": 2_000, "test": 2_000}
    for split in dates.values():
        assert split.column_names == ["source", "target", "locale", "format"]


def test_date_targets_are_iso_dates_in_range(dates):
    for split in dates.values():
        for target in split["target"]:
            assert len(target) == 10
            assert 1900 <= datetime.date.fromisoformat(target).year <= 2099


def test_held_out_dates_never_appear_in_train(dates):
    train_dates = set(dates["train"]["target"])
    validation_dates = set(dates["validation"]["target"])
    test_dates = set(dates["test"]["target"])
    assert not train_dates & validation_dates
    assert not train_dates & test_dates
    assert not validation_dates & test_dates
    # One example per held-out date.
    assert len(validation_dates) == 2_000 and len(test_dates) == 2_000


def test_training_examples_are_distinct(dates):
    train = dates["train"]
    triples = set(zip(train["target"], train["locale"], train["format"]))
    assert len(triples) == len(train)


def test_date_sources_spell_the_month_out(dates):
    # Short all-numeric formats (03/03/98) are ambiguous across locales and must be left out.
    for split in dates.values():
        for source in split["source"]:
            assert any(char.isalpha() for char in source), source
    assert "short" not in set(dates["train"]["format"])


def test_every_default_locale_is_used_about_equally(dates):
    counts = {locale: 0 for locale in DEFAULT_LOCALES}
    for locale in dates["train"]["locale"]:
        counts[locale] += 1
    expected = len(dates["train"]) / len(DEFAULT_LOCALES)
    assert all(0.8 * expected < count < 1.2 * expected for count in counts.values()), counts


def test_each_date_source_has_a_single_target(dates):
    target_of: dict[str, str] = {}
    for split in dates.values():
        for source, target in zip(split["source"], split["target"]):
            assert target_of.setdefault(source, target) == target, f"{source!r} is ambiguous"


def test_date_sources_match_babel_for_the_stated_locale():
    from babel.dates import format_date

    dataset = make_date_dataset(num_train=200, num_validation=10, num_test=10)
    for row in dataset["train"]:
        date = datetime.date.fromisoformat(row["target"])
        assert row["source"] == format_date(date, row["format"], locale=row["locale"])


def test_known_strings_from_pinned_babel():
    from babel.dates import format_date

    date = datetime.date(1998, 3, 3)
    assert format_date(date, "full", locale="en_GB") == "Tuesday, 3 March 1998"
    assert format_date(date, "long", locale="de_DE") == "3. März 1998"
    assert format_date(date, "long", locale="es_ES") == "3 de marzo de 1998"
    assert format_date(date, "long", locale="ja_JP") == "1998年3月3日"


def test_date_generation_is_deterministic_per_seed():
    first = make_date_dataset(num_train=500, num_validation=50, num_test=50, seed=7)
    again = make_date_dataset(num_train=500, num_validation=50, num_test=50, seed=7)
    other = make_date_dataset(num_train=500, num_validation=50, num_test=50, seed=8)
    for name in first:
        assert first[name].to_dict() == again[name].to_dict()
    assert first["train"]["source"][:] != other["train"]["source"][:]


def test_held_out_splits_do_not_depend_on_num_train():
    small = make_date_dataset(num_train=100, num_validation=50, num_test=50, seed=2)
    large = make_date_dataset(num_train=1_000, num_validation=50, num_test=50, seed=2)
    for name in ("validation", "test"):
        assert small[name].to_dict() == large[name].to_dict()
    assert large["train"]["source"][:100] == small["train"]["source"][:]
    toy_small = make_toy_dataset("copy", num_train=100, num_validation=20, num_test=20)
    toy_large = make_toy_dataset("copy", num_train=900, num_validation=20, num_test=20)
    for name in ("validation", "test"):
        assert toy_small[name].to_dict() == toy_large[name].to_dict()


def test_date_dataset_respects_locales_and_years():
    dataset = make_date_dataset(
        num_train=300, num_validation=20, num_test=20, locales=["fr_FR", "de_DE"], start_year=2000, end_year=2001
    )
    for split in dataset.values():
        assert set(split["locale"]) <= {"fr_FR", "de_DE"}
        assert {target[:4] for target in split["target"]} <= {"2000", "2001"}


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"locales": ["xx_NOPE"]}, "unknown locale 'xx_NOPE'"),
        ({"formats": ["short"]}, r"unsupported date format\(s\) \['short'\]"),
        ({"start_year": 2000, "end_year": 2000, "num_validation": 200, "num_test": 200}, "held-out dates"),
        ({"num_train": -1}, "num_train=-1"),
        ({"start_year": 2000, "end_year": 2000, "locales": ["en_GB"], "num_train": 10_000}, "num_train=10000"),
    ],
)
def test_date_dataset_rejects_impossible_requests(kwargs, fragment):
    with pytest.raises(DataError, match=fragment):
        make_date_dataset(**{"num_train": 10, "num_validation": 5, "num_test": 5, **kwargs})


def test_date_formats_that_are_all_numeric_everywhere_are_refused():
    # de_DE and ja_JP write "medium" with digits only, so nothing is left.
    with pytest.raises(DataError, match="all-numeric"):
        make_date_dataset(num_train=10, num_validation=5, num_test=5, locales=["de_DE", "ja_JP"], formats=["medium"])


# ---------------------------------------------------------------------------------------------
# Copy / reverse toy task
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_toy_targets_follow_the_task(task):
    dataset = make_toy_dataset(task, num_train=300, num_validation=30, num_test=30, min_len=2, max_len=6, seed=1)
    assert {name: len(split) for name, split in dataset.items()} == {"train": 300, "validation": 30, "test": 30}
    for split in dataset.values():
        for source, target in zip(split["source"], split["target"]):
            symbols = source.split(" ")
            assert 2 <= len(symbols) <= 6
            assert set(symbols) <= set("abcdefghij")
            assert target.split(" ") == (symbols if task == "copy" else symbols[::-1])


def test_toy_held_out_sequences_are_not_in_train():
    dataset = make_toy_dataset("reverse", num_train=2_000, num_validation=200, num_test=200, min_len=1, max_len=5)
    train = set(dataset["train"]["source"])
    assert not train & set(dataset["validation"]["source"])
    assert not train & set(dataset["test"]["source"])
    assert not set(dataset["validation"]["source"]) & set(dataset["test"]["source"])


def test_toy_dataset_is_deterministic_and_uses_the_given_vocab():
    first = make_toy_dataset("copy", num_train=50, num_validation=5, num_test=5, vocab="xyz", seed=3)
    again = make_toy_dataset("copy", num_train=50, num_validation=5, num_test=5, vocab="xyz", seed=3)
    assert first["train"].to_dict() == again["train"].to_dict()
    assert set("".join(first["train"]["source"]).replace(" ", "")) <= set("xyz")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"task": "sort"}, "unknown toy task"),
        ({"min_len": 5, "max_len": 2}, "min_len=5"),
        ({"vocab": "ab", "min_len": 1, "max_len": 2, "num_train": 100}, "distinct sequences"),
        ({"vocab": ["a", "a"]}, "toy vocabulary"),
    ],
)
def test_toy_dataset_rejects_impossible_requests(kwargs, fragment):
    with pytest.raises(DataError, match=fragment):
        make_toy_dataset(**{"num_train": 10, "num_validation": 2, "num_test": 2, **kwargs})


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_builtin_tasks_are_registered_and_load():
    assert set(BUILTIN_TASKS) == {"dates", "copy", "reverse", "numbers"}
    assert all(task.tokenizer == "char" for task in BUILTIN_TASKS.values())
    dataset = load_task("reverse", num_train=20, num_validation=4, num_test=4)
    assert dataset["train"][0]["target"] == " ".join(reversed(dataset["train"][0]["source"].split(" ")))
    assert len(load_task("dates", num_train=20, num_validation=4, num_test=4)["test"]) == 4


def test_unknown_task_names_the_known_ones():
    with pytest.raises(DataError, match=r"unknown task 'translate'.*\['copy', 'dates', 'numbers', 'reverse'\]"):
        load_task("translate")


# ---------------------------------------------------------------------------------------------
# Users' text pairs
# ---------------------------------------------------------------------------------------------

PAIRS = [("hello", "bonjour"), ("good night", "bonne nuit"), ('say "hi", then', "dis « salut »"), ("a\nb", "c")]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path, rows, header=("source", "target"), delimiter=","):
    import csv

    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def as_pairs(split):
    return list(zip(split["source"], split["target"]))


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".tsv"])
def test_load_text_pairs_reads_every_format(tmp_path, suffix):
    path = tmp_path / f"pairs{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, [{"source": s, "target": t, "extra": 1} for s, t in PAIRS])
    elif suffix == ".json":
        path.write_text(json.dumps([{"source": s, "target": t} for s, t in PAIRS], indent=2), encoding="utf-8")
    else:
        write_csv(path, PAIRS, delimiter="," if suffix == ".csv" else "\t")
    dataset = load_text_pairs(path, validation_fraction=0)
    assert list(dataset) == ["train"]
    assert dataset["train"].column_names == ["source", "target"]
    assert as_pairs(dataset["train"]) == PAIRS


def test_load_text_pairs_renames_custom_columns_and_accepts_a_bom(tmp_path):
    path = tmp_path / "pairs.csv"
    write_csv(path, PAIRS, header=("en", "fr"))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    dataset = load_text_pairs(path, source_column="en", target_column="fr", validation_fraction=0)
    assert as_pairs(dataset["train"]) == PAIRS


def test_load_text_pairs_holds_out_a_seeded_validation_fraction(tmp_path):
    rows = [(f"s{i}", f"t{i}") for i in range(100)]
    path = write_csv(tmp_path / "pairs.csv", rows)
    dataset = load_text_pairs(path, validation_fraction=0.2, seed=3)
    again = load_text_pairs(path, validation_fraction=0.2, seed=3)
    assert (len(dataset["train"]), len(dataset["validation"])) == (80, 20)
    assert sorted(as_pairs(dataset["train"]) + as_pairs(dataset["validation"])) == sorted(rows)
    assert as_pairs(dataset["validation"]) == as_pairs(again["validation"])


def test_load_text_pairs_takes_several_files_and_explicit_splits(tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [{"source": "x", "target": "y"}])
    second = write_csv(tmp_path / "b.csv", [("u", "v")])
    dev = write_csv(tmp_path / "dev.csv", [("p", "q")])
    combined = load_text_pairs([first, second], validation_fraction=0)
    assert as_pairs(combined["train"]) == [("x", "y"), ("u", "v")]
    splits = load_text_pairs({"train": [first, second], "validation": dev})
    assert as_pairs(splits["validation"]) == [("p", "q")]
    assert len(splits["train"]) == 2


def _bad_file(tmp_path, kind):
    """Write a broken data file; return its path and a fragment the error must contain."""
    if kind == "missing file":
        return tmp_path / "nowhere.jsonl", "file not found"
    if kind == "empty file":
        path = tmp_path / "empty.csv"
        path.write_text("", encoding="utf-8")
        return path, "file is empty"
    if kind == "blank file":
        path = tmp_path / "blank.jsonl"
        path.write_text("\n  \n", encoding="utf-8")
        return path, "file is empty"
    if kind == "undecodable bytes":
        path = tmp_path / "latin1.csv"
        path.write_bytes("source,target\ncafé,coffee\n".encode("latin-1"))
        return path, "undecodable byte 0xe9 at byte offset 17"
    if kind == "csv missing column":
        return write_csv(tmp_path / "cols.csv", [("a", "b")], header=("source", "label")), "no column(s) ['target']"
    if kind == "jsonl missing key":
        return write_jsonl(tmp_path / "keys.jsonl", [{"source": "a", "target": "b"}, {"source": "c"}]), "line 2"
    if kind == "jsonl null":
        return write_jsonl(tmp_path / "null.jsonl", [{"source": "a", "target": None}]), "missing or null"
    if kind == "jsonl number":
        return write_jsonl(tmp_path / "num.jsonl", [{"source": "a", "target": 3}]), "is a int"
    if kind == "csv short row":
        path = tmp_path / "short.csv"
        path.write_text("source,target\na,b\nc\n", encoding="utf-8")
        return path, "line 3: column 'target' is missing or null"
    if kind == "csv empty value":
        path = tmp_path / "hole.csv"
        path.write_text("source,target\na,b\n,d\n", encoding="utf-8")
        return path, "line 3: column 'source' is empty"
    if kind == "invalid json":
        path = tmp_path / "broken.jsonl"
        path.write_text('{"source": "a", "target": "b"}\n{"source": "a",\n', encoding="utf-8")
        return path, "line 2 is not valid JSON"
    if kind == "not an object":
        path = tmp_path / "list.jsonl"
        path.write_text('["a", "b"]\n', encoding="utf-8")
        return path, "line 1 is a JSON list"
    if kind == "header only":
        path = tmp_path / "header.csv"
        path.write_text("source,target\n", encoding="utf-8")
        return path, "no examples found"
    if kind == "unsupported extension":
        path = tmp_path / "pairs.parquet"
        path.write_bytes(b"PAR1")
        return path, "unsupported file extension '.parquet'"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "missing file",
        "empty file",
        "blank file",
        "undecodable bytes",
        "csv missing column",
        "jsonl missing key",
        "jsonl null",
        "jsonl number",
        "csv short row",
        "csv empty value",
        "invalid json",
        "not an object",
        "header only",
        "unsupported extension",
    ],
)
def test_bad_data_files_raise_one_line_data_errors(tmp_path, kind):
    path, fragment = _bad_file(tmp_path, kind)
    with pytest.raises(DataError) as caught:
        load_text_pairs(path)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert fragment in message
    assert "; expected " in message
    assert caught.value.path == str(path)


def test_too_few_examples_for_a_validation_split(tmp_path):
    path = write_csv(tmp_path / "one.csv", [("a", "b")])
    with pytest.raises(DataError, match="too few to hold out"):
        load_text_pairs(path, validation_fraction=0.1)
    assert len(load_text_pairs(path, validation_fraction=0)["train"]) == 1


def test_data_error_message_is_one_line_and_keeps_its_parts():
    error = DataError("data/train.csv", "header has no column(s) ['tar\nget']", "a header row naming\n'target'")
    assert str(error) == "data/train.csv: header has no column(s) ['tar get']; expected a header row naming 'target'"
    assert (error.path, error.expected) == ("data/train.csv", "a header row naming\n'target'")
    assert str(DataError(None, "no data files given", "a path")) == "no data files given; expected a path"


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
    with pytest.raises(DataError, match="(not found|cannot be reached)"):
        load_dataset_pairs(str(tmp_path / "no-such-folder"), source_lang="en", target_lang="fr")


# ---------------------------------------------------------------------------------------------
# Numbers spelled out (long outputs)
# ---------------------------------------------------------------------------------------------


def test_number_in_words_follows_english():
    from miniformer_hf.data import number_in_words

    assert number_in_words(0) == "zero"
    assert number_in_words(15) == "fifteen"
    assert number_in_words(40) == "forty"
    assert number_in_words(101) == "one hundred one"
    assert number_in_words(1_000_000) == "one million"
    assert number_in_words(2_000_019) == "two million nineteen"
    assert number_in_words(987_654_321_012) == (
        "nine hundred eighty-seven billion six hundred fifty-four million three hundred twenty-one thousand twelve"
    )
    with pytest.raises(DataError):
        number_in_words(10**12)


def test_number_task_has_long_outputs_and_unseen_held_out_numbers():
    from miniformer_hf.data import make_number_dataset

    data = make_number_dataset(num_train=2000, num_validation=200, num_test=200, seed=1)
    assert {name: len(split) for name, split in data.items()} == {"train": 2000, "validation": 200, "test": 200}
    lengths = sorted(len(target) for target in data["test"]["target"])
    assert lengths[len(lengths) // 2] >= 80  # the median output is 80+ characters
    train = set(data["train"]["source"])
    assert not train & set(data["validation"]["source"]) and not train & set(data["test"]["source"])
    assert data["test"][0]["source"].replace(",", "").isdigit()
    assert load_task("numbers", num_train=10, num_validation=2, num_test=2)["train"].num_rows == 10


# ---------------------------------------------------------------------------------------------
# Limits before work, progress, and where each example came from
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("builder", [make_date_dataset, make_toy_dataset])
def test_generated_tasks_refuse_huge_requests_at_once(builder):
    started = time.perf_counter()
    with pytest.raises(DataError) as raised:
        builder(num_train=100_000_000)
    assert f"{MAX_GENERATED_EXAMPLES:,}" in str(raised.value) and "--num-train" in str(raised.value)
    assert time.perf_counter() - started < 5  # refused before generating anything


def test_long_generation_logs_its_progress(caplog):
    with caplog.at_level(logging.INFO, logger="miniformer_hf.data"):
        make_toy_dataset("copy", num_train=200_000, num_validation=10, num_test=10, max_len=10)
    progress = [record.getMessage() for record in caplog.records if "Generated" in record.getMessage()]
    assert progress and "of 200,020 training examples" in progress[0]


def test_an_overlong_text_is_refused_with_its_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, [{"source": "a", "target": "b"}, {"source": "y" * (MAX_TEXT_CHARACTERS + 1), "target": "b"}])
    with pytest.raises(DataError, match=r"line 2: column 'source' is 100,001 characters long"):
        load_text_pairs(path)


def test_origins_name_the_file_line_after_shuffling(tmp_path):
    path = tmp_path / "pairs.csv"
    rows = [(f"s{i}", f"t{i}") for i in range(30)]
    write_csv(path, rows)
    dataset = load_text_pairs(path, seed=1, with_origin=True)
    for split in dataset.values():
        for source, origin in zip(split["source"], split["origin"]):
            assert origin == f"{path} line {int(source[1:]) + 2}"  # the header is line 1
    assert load_text_pairs(path)["train"].column_names == ["source", "target"]
