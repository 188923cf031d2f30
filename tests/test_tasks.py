"""Tests for miniformer_hf.tasks: the built-in generated tasks (dates, numbers, copy/reverse) and their registry."""

from __future__ import annotations

import datetime
import logging
import time

import babel
import pytest
from datasets import DatasetDict

from miniformer_hf.errors import DataError
from miniformer_hf.tasks import (
    BUILTIN_TASKS,
    DEFAULT_LOCALES,
    MAX_GENERATED_EXAMPLES,
    load_task,
    make_date_dataset,
    make_number_dataset,
    make_toy_dataset,
    number_in_words,
)


# ---------------------------------------------------------------------------------------------
# Date task
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dates() -> dict[str, dict[str, list[str]]]:
    """The splits as plain lists (split -> column -> values): a `datasets` column read row by row is a
    thousand times slower than a list, and these tests read 24,000 rows several times."""
    dataset = make_date_dataset(num_train=20_000, num_validation=2_000, num_test=2_000, seed=0)
    assert isinstance(dataset, DatasetDict)
    return {name: split.to_dict() for name, split in dataset.items()}


def test_babel_is_the_pinned_version():
    # Locale data changes the strings, so the task is only reproducible with the pinned babel.
    assert babel.__version__ == "2.19.0"


def test_date_splits_have_the_requested_sizes_and_columns(dates):
    assert {name: len(split["source"]) for name, split in dates.items()} == {"train": 20_000, "validation": 2_000,
                                                                           "test": 2_000}  # fmt: skip
    for split in dates.values():
        assert list(split) == ["source", "target", "locale", "format"]


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
    assert len(triples) == len(train["target"])


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
    expected = len(dates["train"]["locale"]) / len(DEFAULT_LOCALES)
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
# Numbers spelled out (long outputs)
# ---------------------------------------------------------------------------------------------


def test_number_in_words_follows_english():
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
    data = make_number_dataset(num_train=2000, num_validation=200, num_test=200, seed=1)
    assert {name: len(split) for name, split in data.items()} == {"train": 2000, "validation": 200, "test": 200}
    lengths = sorted(len(target) for target in data["test"]["target"])
    assert lengths[len(lengths) // 2] >= 80  # the median output is 80+ characters
    train = set(data["train"]["source"])
    assert not train & set(data["validation"]["source"]) and not train & set(data["test"]["source"])
    assert data["test"][0]["source"].replace(",", "").isdigit()
    assert load_task("numbers", num_train=10, num_validation=2, num_test=2)["train"].num_rows == 10


# ---------------------------------------------------------------------------------------------
# Limits before work, and progress
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("builder", [make_date_dataset, make_toy_dataset, make_number_dataset])
def test_generated_tasks_refuse_huge_requests_at_once(builder):
    started = time.perf_counter()
    with pytest.raises(DataError) as raised:
        builder(num_train=100_000_000)
    assert f"{MAX_GENERATED_EXAMPLES:,}" in str(raised.value) and "--num-train" in str(raised.value)
    assert time.perf_counter() - started < 5  # refused before generating anything


def test_long_generation_logs_its_progress(caplog, monkeypatch):
    from miniformer_hf import tasks

    monkeypatch.setattr(tasks, "_PROGRESS_EVERY", 1_000)  # (100,000 in use: a long generation, not a test's)
    with caplog.at_level(logging.INFO, logger="miniformer_hf.tasks"):
        make_toy_dataset("copy", num_train=2_500, num_validation=10, num_test=10, max_len=10)
    progress = [record.getMessage() for record in caplog.records if "Generated" in record.getMessage()]
    assert progress == [f"Generated {done} of 2,520 training examples ({percent}%)" for done, percent in
                        (("1,000", 39), ("2,000", 79))]  # fmt: skip

