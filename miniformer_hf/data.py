"""Sequence-to-sequence data: built-in tasks generated locally, and users' own text pairs.

Every loader returns a `datasets.DatasetDict` whose splits have string columns ``source`` and
``target`` (built-in tasks add a few descriptive columns). Built-in tasks and files download nothing.

Built-in tasks (see `BUILTIN_TASKS` and `load_task`):

* ``dates``   dates written out in words by `babel` in a dozen locales ("Tuesday, 3 March 1998",
  "3. März 1998", "3 de marzo de 1998", "1998年3月3日") mapped to ISO ``YYYY-MM-DD``. The
  ``validation`` and ``test`` splits are made of calendar dates that never occur in ``train``
  under any locale or format, so exact match on them measures generalisation, not recall.
* ``numbers``  integers with thousands separators spelled out in English words: outputs of about
  100 characters, to check that what learns dates fast also learns long outputs.
* ``copy`` / ``reverse``  the toy task of "The Annotated Transformer": a sequence of symbols is
  copied (or reversed). A model that works learns it within seconds. Held-out sequences never
  occur in ``train``.

Users' own data (`load_text_pairs`): JSON Lines, JSON (an array of objects) or CSV/TSV files with a
source and a target column. Anything wrong with such a file raises `DataError`, whose message is
one line naming the file, the problem and what was expected.

Datasets from the Hugging Face Hub, local dataset folders and ``save_to_disk`` folders
(`load_dataset_pairs`): a ``translation`` column of ``{language: text}`` dicts or two plain text
columns, checked (columns, languages, types, empty splits) before anything is tokenized.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import json
import logging
import os
import random
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Mapping, Sequence

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, get_date_format
from datasets import Dataset, DatasetDict, concatenate_datasets


from .errors import MiniformerError

logger = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_TASKS",
    "MAX_GENERATED_EXAMPLES",
    "MAX_TEXT_CHARACTERS",
    "DATE_FORMATS",
    "DEFAULT_LOCALES",
    "BuiltinTask",
    "DataError",
    "load_dataset_pairs",
    "load_task",
    "load_text_pairs",
    "make_date_dataset",
    "make_number_dataset",
    "number_in_words",
    "make_toy_dataset",
]


# Limits checked before any work starts, so a typo (--num-train 100000000) or a runaway line fails at
# once instead of after minutes and gigabytes. Both are far beyond what the models here can use: the
# positional table holds 1,024 tokens, and 2,000,000 examples are 40 epochs of the longest default run.
MAX_GENERATED_EXAMPLES = 2_000_000
MAX_TEXT_CHARACTERS = 100_000
# Built-in tasks log their progress when they generate at least this many examples.
_PROGRESS_EVERY = 100_000


class DataError(MiniformerError):
    """A data file (or a request for data) that cannot be used; the message is a single line."""

    def __init__(self, path: str | os.PathLike | None, problem: str, expected: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        self.expected = expected
        where = f"{self.path}: " if self.path is not None else ""
        message = f"{where}{problem}; expected {expected}"
        # One line, whatever the pieces contained (a column name with a newline, say).
        super().__init__(" ".join(message.splitlines()))


def _check_counts(num_train: int, num_validation: int, num_test: int) -> None:
    for name, value in (("num_train", num_train), ("num_validation", num_validation), ("num_test", num_test)):
        if not isinstance(value, int) or value < 0:
            raise DataError(None, f"{name}={value!r}", "a non-negative integer")
    total = num_train + num_validation + num_test
    if total > MAX_GENERATED_EXAMPLES:
        raise DataError(
            None,
            f"{total:,} examples requested (num_train={num_train:,}), over the limit of {MAX_GENERATED_EXAMPLES:,} "
            "generated examples",
            f"at most {MAX_GENERATED_EXAMPLES:,} in all (--num-train); for more data, train on your own file",
        )


def _log_progress(done: int, total: int) -> None:
    if total >= _PROGRESS_EVERY and done and done % _PROGRESS_EVERY == 0:
        logger.info("Generated %s of %s training examples (%d%%)", f"{done:,}", f"{total:,}", 100 * done // total)


# ---------------------------------------------------------------------------------------------
# Date normalisation
# ---------------------------------------------------------------------------------------------

# Locales whose CLDR date formats spell the month out (or label each field, as 年/月/日 do).
DEFAULT_LOCALES: tuple[str, ...] = (
    "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT",
    "pt_BR", "nl_NL", "sv_SE", "pl_PL", "ja_JP", "zh_CN",
)  # fmt: skip

# CLDR's named date formats; "short" is left out because it is all digits in every locale.
DATE_FORMATS: tuple[str, ...] = ("full", "long", "medium")

# A date with day > 12 and a distinct month/day/year, used to tell formats apart.
_PROBE_DATE = datetime.date(1998, 3, 23)


@dataclass(frozen=True)
class _DateStyle:
    locale_name: str
    format_name: str
    locale: Locale
    pattern: str


def _date_styles(locales: Sequence[str], formats: Sequence[str]) -> list[_DateStyle]:
    """Resolve every locale × format to a babel pattern, once, dropping the all-numeric ones.

    A format is all-numeric when it writes a date with digits and punctuation only
    ("03.03.1998", "1998/03/03"): those are ambiguous across locales (is 03/04 March or April?),
    so they are not a fair task. Two names that give the same pattern in one locale (zh_CN's
    "long" and "medium") are kept once, so no pattern is sampled twice as often as the others.
    """
    unknown_formats = [name for name in formats if name not in DATE_FORMATS]
    if unknown_formats:
        raise DataError(
            None,
            f"unsupported date format(s) {unknown_formats}",
            f"names among {list(DATE_FORMATS)} ('short' is all digits, which is ambiguous across locales)",
        )
    styles = []
    for locale_name in locales:
        try:
            locale = Locale.parse(locale_name)
        except (UnknownLocaleError, ValueError, TypeError) as error:
            raise DataError(
                None, f"unknown locale {locale_name!r}", "a CLDR locale identifier such as 'en_GB' or 'pt_BR'"
            ) from error
        seen_patterns = set()
        for format_name in formats:
            pattern = get_date_format(format_name, locale=locale).pattern
            if pattern in seen_patterns:
                continue
            if not any(char.isalpha() for char in format_date(_PROBE_DATE, pattern, locale=locale)):
                logger.debug("Skipping all-numeric date format %s/%s (%r)", locale_name, format_name, pattern)
                continue
            seen_patterns.add(pattern)
            styles.append(_DateStyle(locale_name, format_name, locale, pattern))
    return styles


def _date_split(examples: Iterable[tuple[datetime.date, _DateStyle]]) -> Dataset:
    columns: dict[str, list[str]] = {"source": [], "target": [], "locale": [], "format": []}
    for date, style in examples:
        columns["source"].append(format_date(date, style.pattern, locale=style.locale))
        columns["target"].append(date.isoformat())
        columns["locale"].append(style.locale_name)
        columns["format"].append(style.format_name)
    return Dataset.from_dict(columns)


def make_date_dataset(
    num_train: int = 50_000,
    num_validation: int = 1_000,
    num_test: int = 1_000,
    seed: int = 0,
    locales: Sequence[str] = DEFAULT_LOCALES,
    formats: Sequence[str] = DATE_FORMATS,
    start_year: int = 1900,
    end_year: int = 2099,
) -> DatasetDict:
    """Dates written out in words in several locales, mapped to ISO ``YYYY-MM-DD``.

    Columns: ``source`` ("3 de marzo de 1998"), ``target`` ("1998-03-03"), ``locale`` ("es_ES")
    and ``format`` ("long"). The result depends only on the arguments (and the pinned babel).

    Held-out splits: ``num_validation + num_test`` calendar dates between ``start_year`` and
    ``end_year`` are set aside first; each gives one validation or test example (in a random
    locale and format), and none of them appears in ``train`` in any locale or format. The
    ``train`` examples are distinct (date, locale, format) triples drawn from the other dates,
    with each locale equally likely.
    """
    _check_counts(num_train, num_validation, num_test)
    if not start_year <= end_year or start_year < 1 or end_year > 9999:
        raise DataError(
            None, f"year range {start_year}..{end_year}", "1 <= start_year <= end_year <= 9999 (four-digit ISO years)"
        )
    if not locales:
        raise DataError(None, "no locales given", f"at least one locale, for example {list(DEFAULT_LOCALES[:3])}")
    styles = _date_styles(locales, formats)
    if not styles:
        raise DataError(
            None,
            f"every format {list(formats)} is all-numeric in locales {list(locales)}",
            "at least one locale/format that writes the month in words (add 'long' or 'full')",
        )
    styles_by_locale: dict[str, list[_DateStyle]] = {}
    for style in styles:
        styles_by_locale.setdefault(style.locale_name, []).append(style)
    locale_names = list(styles_by_locale)

    first_day = datetime.date(start_year, 1, 1).toordinal()
    last_day = datetime.date(end_year, 12, 31).toordinal()
    num_days = last_day - first_day + 1
    num_held_out = num_validation + num_test
    if num_held_out >= num_days:
        raise DataError(
            None,
            f"{num_held_out} held-out dates requested but {start_year}..{end_year} has only {num_days} days",
            "num_validation + num_test below the number of days, so some dates remain for training",
        )
    num_train_days = num_days - num_held_out
    # Every (date, locale, format) triple of the training dates is a possible training example.
    capacity = num_train_days * len(styles)
    if num_train > capacity // 2:
        raise DataError(
            None,
            f"num_train={num_train} is more than half of the {capacity} distinct training examples available",
            "a smaller num_train, or a wider year range / more locales",
        )

    rng = random.Random(seed)
    held_out = rng.sample(range(first_day, last_day + 1), num_held_out)
    held_out_set = set(held_out)
    train_days = [day for day in range(first_day, last_day + 1) if day not in held_out_set]

    def random_style() -> _DateStyle:
        return rng.choice(styles_by_locale[rng.choice(locale_names)])

    # Held-out examples first, so they stay the same whatever num_train is.
    validation_examples = [(datetime.date.fromordinal(day), random_style()) for day in held_out[:num_validation]]
    test_examples = [(datetime.date.fromordinal(day), random_style()) for day in held_out[num_validation:]]
    seen: set[tuple[int, str, str]] = set()
    train_examples = []
    while len(train_examples) < num_train:
        day = rng.choice(train_days)
        style = random_style()
        key = (day, style.locale_name, style.pattern)
        if key in seen:
            continue
        seen.add(key)
        train_examples.append((datetime.date.fromordinal(day), style))
        _log_progress(len(train_examples), num_train)

    return DatasetDict(
        train=_date_split(train_examples),
        validation=_date_split(validation_examples),
        test=_date_split(test_examples),
    )


# ---------------------------------------------------------------------------------------------
# Copy / reverse toy task
# ---------------------------------------------------------------------------------------------

TOY_TASKS: tuple[str, ...] = ("copy", "reverse")


def make_toy_dataset(
    task: str = "copy",
    num_train: int = 10_000,
    num_validation: int = 500,
    num_test: int = 500,
    min_len: int = 3,
    max_len: int = 10,
    vocab: str | Sequence[str] = "abcdefghij",
    seed: int = 0,
) -> DatasetDict:
    """Random symbol sequences to copy or reverse, symbols separated by single spaces.

    ``source`` "c a f b" has ``target`` "c a f b" (copy) or "b f a c" (reverse). Lengths are
    uniform in ``[min_len, max_len]``. All sequences are distinct, so no validation or test
    source occurs in ``train``. Symbols are single characters (or any strings without spaces),
    so a character-level tokenizer and a word-level one both fit.
    """
    if task not in TOY_TASKS:
        raise DataError(None, f"unknown toy task {task!r}", f"one of {list(TOY_TASKS)}")
    symbols = list(vocab)
    if not symbols or len(set(symbols)) != len(symbols) or any(not s or s.isspace() or " " in s for s in symbols):
        raise DataError(None, f"toy vocabulary {symbols!r}", "distinct, non-empty symbols without spaces")
    if not 1 <= min_len <= max_len:
        raise DataError(None, f"sequence lengths min_len={min_len}, max_len={max_len}", "1 <= min_len <= max_len")
    _check_counts(num_train, num_validation, num_test)
    total = num_train + num_validation + num_test
    available = sum(len(symbols) ** length for length in range(min_len, max_len + 1))
    if total > available // 2:
        raise DataError(
            None,
            f"{total} distinct sequences requested but only {available} exist for lengths {min_len}..{max_len}",
            "fewer examples, a larger vocab or a larger max_len",
        )

    rng = random.Random(seed)
    sequences: set[tuple[str, ...]] = set()
    # Held-out sequences are drawn first, so they stay the same whatever num_train is.
    ordered: list[tuple[str, ...]] = []
    while len(ordered) < total:
        sequence = tuple(rng.choice(symbols) for _ in range(rng.randint(min_len, max_len)))
        if sequence not in sequences:
            sequences.add(sequence)
            ordered.append(sequence)
            _log_progress(len(ordered), total)

    def split(part: list[tuple[str, ...]]) -> Dataset:
        targets = part if task == "copy" else [sequence[::-1] for sequence in part]
        return Dataset.from_dict({"source": [" ".join(s) for s in part], "target": [" ".join(t) for t in targets]})

    return DatasetDict(
        train=split(ordered[num_validation + num_test :]),
        validation=split(ordered[:num_validation]),
        test=split(ordered[num_validation : num_validation + num_test]),
    )


# ---------------------------------------------------------------------------------------------
# Numbers spelled out: a task with long outputs
# ---------------------------------------------------------------------------------------------

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ("", " thousand", " million", " billion")


def _below_thousand(number: int) -> str:
    hundreds, rest = divmod(number, 100)
    words = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        words.append(_TENS[rest // 10] + (f"-{_ONES[rest % 10]}" if rest % 10 else ""))
    elif rest:
        words.append(_ONES[rest])
    return " ".join(words)


def number_in_words(number: int) -> str:
    """English words for 0 <= number < 10**12: 987654321012 -> "nine hundred eighty-seven billion six
    hundred fifty-four million three hundred twenty-one thousand twelve"."""
    if not 0 <= number < 10**12:
        raise DataError(None, f"number {number}", "an integer in [0, 10**12)")
    if number == 0:
        return "zero"
    groups = []
    for scale in _SCALES:
        number, group = divmod(number, 1000)
        if group:
            groups.append(_below_thousand(group) + scale)
    return " ".join(reversed(groups))


def make_number_dataset(
    num_train: int = 50_000, num_validation: int = 1_000, num_test: int = 1_000, seed: int = 0
) -> DatasetDict:
    """Integers with thousands separators ("987,654,321,012") spelled out in English words.

    The outputs are long (about 100 characters for 12-digit numbers, which are 90% of the examples;
    the rest have 1 to 11 digits) and every character of them depends on the input, so a model must
    carry the whole number through. Held-out numbers never occur in ``train``.
    """
    total = num_train + num_validation + num_test
    rng = random.Random(seed)
    numbers: list[int] = []
    seen: set[int] = set()
    while len(numbers) < total:
        digits = 12 if rng.random() < 0.9 else rng.randint(1, 11)
        number = rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10**digits)
        if number not in seen:
            seen.add(number)
            numbers.append(number)

    def split(part: list[int]) -> Dataset:
        return Dataset.from_dict({"source": [f"{n:,}" for n in part], "target": [number_in_words(n) for n in part]})

    return DatasetDict(
        train=split(numbers[num_validation + num_test :]),
        validation=split(numbers[:num_validation]),
        test=split(numbers[num_validation : num_validation + num_test]),
    )


# ---------------------------------------------------------------------------------------------
# Users' own text pairs
# ---------------------------------------------------------------------------------------------

_JSON_SUFFIXES = (".jsonl", ".json")
_CSV_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_SUPPORTED_SUFFIXES = _JSON_SUFFIXES + tuple(_CSV_DELIMITERS)


def _read_text(path: str) -> str:
    if not os.path.exists(path):
        raise DataError(path, "file not found", "an existing .jsonl, .json, .csv or .tsv file (check the path)")
    if not os.path.isfile(path):
        raise DataError(path, "not a regular file", "a .jsonl, .json, .csv or .tsv file, not a directory")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        problem = f"cannot be read ({error.strerror})"
        raise DataError(path, problem, "a readable file (check its permissions)") from error
    try:
        # utf-8-sig: also accept the byte-order mark that spreadsheet programs write.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(
            path,
            f"undecodable byte 0x{raw[error.start]:02x} at byte offset {error.start}",
            "UTF-8 text (re-save the file as UTF-8)",
        ) from error
    if not text.strip():
        raise DataError(path, "file is empty", "a header row (CSV) or one JSON object per line (JSONL) with examples")
    return text


def _check_value(path: str, where: str, column: str, value: object) -> str:
    if value is None:
        raise DataError(path, f"{where}: column {column!r} is missing or null", "a non-empty string in every row")
    if not isinstance(value, str):
        raise DataError(path, f"{where}: column {column!r} is a {type(value).__name__} ({value!r})", "a string")
    if not value:
        raise DataError(path, f"{where}: column {column!r} is empty", "a non-empty string in every row")
    if len(value) > MAX_TEXT_CHARACTERS:
        raise DataError(
            path,
            f"{where}: column {column!r} is {len(value):,} characters long, over the limit of "
            f"{MAX_TEXT_CHARACTERS:,}",
            "shorter texts (the model's positional table holds 1,024 tokens); split or drop the line",
        )
    return value


def _read_json_rows(path: str, suffix: str, text: str) -> Iterable[tuple[str, object]]:
    """Yield (location, row) for a JSON array file or a JSON Lines file."""
    if suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            problem = f"invalid JSON at line {error.lineno} ({error.msg})"
            raise DataError(path, problem, "a JSON array of objects") from error
        for index, row in enumerate(rows):
            yield f"item {index}", row
        return
    # Split on "\n" only: str.splitlines would also split inside strings holding U+2028 and the like.
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {line_number}", json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                path, f"line {line_number} is not valid JSON ({error.msg})", "one JSON object per line (JSON Lines)"
            ) from error


def _read_pairs(path: str, source_column: str, target_column: str, with_origin: bool = False) -> Dataset:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _SUPPORTED_SUFFIXES:
        problem = f"unsupported file extension {suffix or '(none)'!r}"
        raise DataError(path, problem, f"one of {list(_SUPPORTED_SUFFIXES)}")
    text = _read_text(path)
    columns = (source_column, target_column)
    sources: list[str] = []
    targets: list[str] = []
    origins: list[str] = []

    if suffix in _JSON_SUFFIXES:
        for where, row in _read_json_rows(path, suffix, text):
            if not isinstance(row, dict):
                raise DataError(path, f"{where} is a JSON {type(row).__name__}", f"an object with keys {list(columns)}")
            missing = [column for column in columns if column not in row]
            if missing:
                raise DataError(
                    path,
                    f"{where} has no key(s) {missing} (keys: {sorted(row)})",
                    f"keys {list(columns)} (or name yours with --source-column/--target-column, source_column/target_column in Python)",
                )
            sources.append(_check_value(path, where, source_column, row[source_column]))
            targets.append(_check_value(path, where, target_column, row[target_column]))
            origins.append(f"{path} {where}")
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_CSV_DELIMITERS[suffix])
        header = reader.fieldnames or []
        missing = [column for column in columns if column not in header]
        if missing:
            raise DataError(
                path,
                f"header has no column(s) {missing} (header: {header})",
                f"a header row naming {list(columns)} (or name yours with --source-column/--target-column, source_column/target_column in Python)",
            )
        try:
            for row in reader:
                # The header is line 1; a quoted field may span lines, so use the reader's count.
                where = f"line {reader.line_num}"
                sources.append(_check_value(path, where, source_column, row[source_column]))
                targets.append(_check_value(path, where, target_column, row[target_column]))
                origins.append(f"{path} {where}")
        except csv.Error as error:
            raise DataError(path, f"malformed CSV near line {reader.line_num} ({error})", "well-formed CSV") from error

    if not sources:
        raise DataError(path, "no examples found", f"at least one row with columns {list(columns)}")
    columns_out = {"source": sources, "target": targets}
    if with_origin:
        columns_out["origin"] = origins
    return Dataset.from_dict(columns_out)


def _load_split(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    source_column: str,
    target_column: str,
    with_origin: bool = False,
) -> Dataset:
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise DataError(None, "no data files given", "at least one .jsonl, .json, .csv or .tsv path")
    return concatenate_datasets(
        [_read_pairs(os.fspath(path), source_column, target_column, with_origin) for path in paths]
    )


def load_text_pairs(
    path_or_paths: str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike | Sequence],
    source_column: str = "source",
    target_column: str = "target",
    validation_fraction: float = 0.1,
    seed: int = 0,
    with_origin: bool = False,
) -> DatasetDict:
    """Load source/target pairs from JSON Lines, JSON or CSV/TSV files into a `DatasetDict`.

    ``path_or_paths`` is a file, a list of files (concatenated), or a mapping from split name to
    file(s), e.g. ``{"train": "train.csv", "validation": "dev.csv"}``. Without a ``validation``
    split in a mapping, ``validation_fraction`` of ``train`` (shuffled with ``seed``) becomes
    ``validation``; 0 keeps everything in ``train``. The splits have columns ``source`` and
    ``target`` whatever the columns were called in the files.

    With ``with_origin``, each split also has an ``origin`` column ("pairs.csv line 31") that
    error messages about an example use, since shuffling makes row numbers meaningless.

    Raises `DataError` (a `ValueError` with a one-line message) for a missing, empty or
    non-UTF-8 file, a missing column, or a null/non-string value.
    """
    if not 0 <= validation_fraction < 1:
        raise DataError(None, f"validation_fraction={validation_fraction}", "a fraction in [0, 1)")
    if isinstance(path_or_paths, Mapping):
        splits = {
            name: _load_split(paths, source_column, target_column, with_origin)
            for name, paths in path_or_paths.items()
        }
        if "train" not in splits:
            problem = f"data file splits {sorted(splits)} have no 'train'"
            raise DataError(None, problem, "a mapping with a 'train' entry")
    else:
        splits = {"train": _load_split(path_or_paths, source_column, target_column, with_origin)}

    if "validation" not in splits and validation_fraction > 0:
        splits["train"], splits["validation"] = _hold_out(
            splits["train"], validation_fraction, seed, None,
            f"a validation fraction of {validation_fraction}",
            "more examples, or a separate validation file (--validation-file)",
        )  # fmt: skip
    return DatasetDict(splits)


def _hold_out(train: Dataset, fraction: float, seed: int, where: str | None, what: str, expected: str):
    """``(train, validation)``: ``fraction`` of ``train``, shuffled with ``seed``, held out (at least one)."""
    num_validation = max(1, round(len(train) * fraction))
    if len(train) - num_validation < 1:
        raise DataError(where, f"only {len(train)} example(s), too few to hold out {what}", expected)
    parts = train.train_test_split(test_size=num_validation, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


# ---------------------------------------------------------------------------------------------
# Datasets from the Hugging Face Hub, local dataset folders and save_to_disk folders
# ---------------------------------------------------------------------------------------------

TRANSLATION_COLUMN = "translation"
_STRING_DTYPES = ("string", "large_string")
_DATASET_EXPECTED = (
    "a Hub dataset id such as 'wmt/wmt14' (check the spelling, --dataset-revision, and HF_TOKEN for a private "
    "dataset), a local dataset folder, or a folder written by Dataset.save_to_disk"
)


def _is_saved_to_disk(path: str) -> bool:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return os.path.isfile(os.path.join(path, "dataset_dict.json")) or os.path.isfile(os.path.join(path, "state.json"))


def _open_dataset(name: str, config: str | None, revision: str | None, streaming: bool):
    """`datasets.load_dataset` (Hub id or data folder) or `datasets.load_from_disk`, as a dict of splits."""
    import datasets

    if os.path.isdir(name) and _is_saved_to_disk(name):
        if config is not None or revision is not None:
            raise DataError(
                name,
                "a save_to_disk folder has no configurations or revisions",
                "no --dataset-config/--dataset-revision with a saved dataset folder",
            )
        loaded = datasets.load_from_disk(name)
        splits = dict(loaded) if isinstance(loaded, DatasetDict) else {"train": loaded}
        if streaming:
            splits = {split: dataset.to_iterable_dataset() for split, dataset in splits.items()}
        return splits
    try:
        loaded = datasets.load_dataset(name, config, revision=revision, streaming=streaming)
    except ConnectionError as error:  # HF_HUB_OFFLINE=1, or no network, and nothing cached
        raise DataError(
            name,
            f"the Hub cannot be reached and the dataset is not cached ({error})",
            "network access (unset HF_HUB_OFFLINE), a dataset cached by an earlier run, or a local folder",
        ) from error
    except FileNotFoundError as error:  # includes datasets' DatasetNotFoundError (unknown id or revision)
        raise DataError(name, f"dataset not found ({error})", _DATASET_EXPECTED) from error
    except ValueError as error:  # an unknown configuration name, among others; the message lists the valid ones
        raise DataError(
            name, f"cannot load the dataset ({error})", "an existing --dataset-config (the message lists them)"
        ) from error
    return dict(loaded)


def _string_feature(feature) -> bool:
    from datasets import Value

    return isinstance(feature, Value) and feature.dtype in _STRING_DTYPES


def _pair_columns(
    name: str,
    split: str,
    features,
    source_lang: str | None,
    target_lang: str | None,
    source_column: str,
    target_column: str,
) -> tuple[str, str]:
    """Check the split's features and return the (flattened) source and target column names."""
    from datasets import Translation

    columns = sorted(features) if features is not None else []
    if source_lang is not None or target_lang is not None:
        if source_lang is None or target_lang is None:
            raise DataError(name, "only one of --source-lang/--target-lang given", "both, e.g. --source-lang en --target-lang de")
        if TRANSLATION_COLUMN not in columns:
            raise DataError(
                name,
                f"split {split!r} has no {TRANSLATION_COLUMN!r} column (columns: {columns})",
                "a 'translation' column of {language: text} dicts for --source-lang/--target-lang, or plain text "
                "columns named with --source-column/--target-column",
            )
        feature = features[TRANSLATION_COLUMN]
        if isinstance(feature, Translation):
            languages = list(feature.languages)
        elif isinstance(feature, dict) and all(_string_feature(value) for value in feature.values()):
            languages = list(feature)
        else:
            raise DataError(
                name, f"split {split!r}: column 'translation' has type {feature}", "a dict of language code -> text"
            )
        missing = [lang for lang in (source_lang, target_lang) if lang not in languages]
        if missing:
            raise DataError(
                name,
                f"split {split!r}: language(s) {missing} not in the translation column (languages: {languages})",
                f"--source-lang and --target-lang among {languages}",
            )
        return f"{TRANSLATION_COLUMN}.{source_lang}", f"{TRANSLATION_COLUMN}.{target_lang}"
    if source_column == target_column:
        raise DataError(name, f"--source-column and --target-column are both {source_column!r}", "two different columns")
    for flag, column in (("--source-column", source_column), ("--target-column", target_column)):
        if column not in columns:
            hint = (
                " (this dataset has a 'translation' column: pass --source-lang and --target-lang)"
                if TRANSLATION_COLUMN in columns
                else ""
            )
            raise DataError(
                name,
                f"split {split!r} has no column {column!r} (columns: {columns}){hint}",
                f"{flag} naming a text column of the dataset",
            )
        if not _string_feature(features[column]):
            raise DataError(
                name,
                f"split {split!r}: column {column!r} has type {features[column]}",
                f"{flag} naming a column of strings",
            )
    return source_column, target_column


def _non_empty_text(batch: dict[str, list]) -> list[bool]:
    return [bool(source) and bool(target) for source, target in zip(batch["source"], batch["target"])]


def _lookup(example: dict, column: str):
    """``example["translation.en"]`` is ``example["translation"]["en"]``; other names are plain columns."""
    if column.startswith(TRANSLATION_COLUMN + ".") and column not in example:
        return example[TRANSLATION_COLUMN][column[len(TRANSLATION_COLUMN) + 1 :]]
    return example[column]


def _pick_pair(example: dict, source: str, target: str) -> dict[str, str]:
    return {"source": _lookup(example, source), "target": _lookup(example, target)}


def _as_pairs(dataset, source: str, target: str):
    """``dataset`` with only string columns ``source`` and ``target``; rows with an empty or null side are dropped."""
    if isinstance(dataset, Dataset):  # column operations on Arrow tables, no pass over the rows
        if source.startswith(TRANSLATION_COLUMN + ".") or target.startswith(TRANSLATION_COLUMN + "."):
            dataset = dataset.flatten()  # {"translation": {"en": .., "de": ..}} -> "translation.en", "translation.de"
        dataset = dataset.select_columns([source, target]).rename_columns({source: "source", target: "target"})
    else:  # a stream: the same, example by example as it is read
        dataset = dataset.map(
            partial(_pick_pair, source=source, target=target), remove_columns=list(dataset.column_names or [])
        )
    return dataset.filter(_non_empty_text, batched=True)


@contextlib.contextmanager
def _no_cache_files():
    """`datasets` writes the results of filter/split next to a dataset's own files (into a user's
    save_to_disk folder, say); with caching off they go to a temporary folder instead."""
    import datasets

    enabled = datasets.is_caching_enabled()
    datasets.disable_caching()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_caching()


def _is_empty(dataset) -> bool:
    if isinstance(dataset, Dataset):
        return len(dataset) == 0
    return next(iter(dataset.take(1)), None) is None


def load_dataset_pairs(
    name: str,
    config: str | None = None,
    *,
    revision: str | None = None,
    source_lang: str | None = None,
    target_lang: str | None = None,
    source_column: str = "source",
    target_column: str = "target",
    validation_split_percentage: float = 5.0,
    streaming: bool = False,
    validation_examples: int = 1000,
    seed: int = 0,
) -> DatasetDict | dict:
    """Source/target pairs from a `datasets` dataset: a Hub repo id, a local dataset folder or a
    `save_to_disk` folder, with splits ``train``, ``validation`` and (if the dataset has one) ``test``.

    Two layouts are understood: a ``translation`` column of ``{language: text}`` dicts (the Hub's
    translation datasets, e.g. ``wmt/wmt14``; pass ``source_lang`` and ``target_lang``), or plain text
    columns ``source_column`` and ``target_column``. Either way the result has string columns
    ``source`` and ``target`` only; rows with an empty or missing side are dropped.

    Without a ``validation`` split, ``validation_split_percentage`` percent of ``train`` (shuffled with
    ``seed``) becomes one. With ``streaming=True`` the splits are `datasets.IterableDataset` objects read
    as they are consumed, and a missing validation split is the first ``validation_examples`` pairs
    of ``train`` (which training then skips).

    Everything is checked before any example is tokenized: an unknown dataset, revision or
    configuration, no ``train`` split, a missing column or language, a column that is not text, or
    an empty split raises `DataError` with a one-line message.
    """
    if not 0 <= validation_split_percentage < 100:
        raise DataError(
            None, f"validation split percentage {validation_split_percentage}", "a percentage in [0, 100), e.g. 5"
        )
    splits = _open_dataset(name, config, revision, streaming)
    with _no_cache_files():
        return _pairs_from_splits(
            name, splits, source_lang, target_lang, source_column, target_column, validation_split_percentage,
            streaming, validation_examples, seed,
        )  # fmt: skip


def _pairs_from_splits(
    name, splits, source_lang, target_lang, source_column, target_column, validation_split_percentage, streaming,
    validation_examples, seed,
):  # fmt: skip
    if "train" not in splits:
        raise DataError(name, f"no 'train' split (splits: {sorted(splits)})", "a dataset with a 'train' split")
    pairs = {}
    for split, dataset in splits.items():
        if split not in ("train", "validation", "test"):
            continue
        features = dataset.features
        source, target = _pair_columns(name, split, features, source_lang, target_lang, source_column, target_column)
        pairs[split] = _as_pairs(dataset, source, target)
    if "validation" not in pairs and (streaming or validation_split_percentage > 0):
        train = pairs["train"]
        if streaming:
            pairs["validation"] = train.take(validation_examples)
            pairs["train"] = train.skip(validation_examples)
        else:
            pairs["train"], pairs["validation"] = _hold_out(
                train, validation_split_percentage / 100, seed, name, f"{validation_split_percentage}% for validation",
                "more examples, a 'validation' split, or --validation-split-percentage 0",
            )  # fmt: skip
    for split, dataset in pairs.items():
        if _is_empty(dataset):
            raise DataError(
                name,
                f"split {split!r} is empty (no pair with both a source and a target text)",
                "at least one non-empty pair in every split used (train, validation, test)",
            )
    return pairs if streaming else DatasetDict(pairs)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinTask:
    """A task that `load_task` can build locally; ``tokenizer`` is the kind that suits it."""

    name: str
    description: str
    build: Callable[..., DatasetDict]
    tokenizer: str = "char"


BUILTIN_TASKS: dict[str, BuiltinTask] = {
    "dates": BuiltinTask("dates", "dates in words in a dozen locales -> ISO YYYY-MM-DD", make_date_dataset),
    "copy": BuiltinTask("copy", "copy a sequence of symbols", partial(make_toy_dataset, task="copy")),
    "reverse": BuiltinTask("reverse", "reverse a sequence of symbols", partial(make_toy_dataset, task="reverse")),
    "numbers": BuiltinTask("numbers", "numbers (987,654,321,012) -> English words, ~100-character outputs",
                           make_number_dataset),  # fmt: skip
}


def load_task(name: str, **kwargs) -> DatasetDict:
    """Build the built-in task ``name`` ("dates", "copy" or "reverse"); ``kwargs`` go to its builder."""
    if name not in BUILTIN_TASKS:
        expected = f"one of {sorted(BUILTIN_TASKS)}, or a path to your own data file"
        raise DataError(None, f"unknown task {name!r}", expected)
    return BUILTIN_TASKS[name].build(**kwargs)
