"""Built-in sequence-to-sequence tasks, generated locally: nothing is downloaded.

Every builder returns a `datasets.DatasetDict` with splits ``train``, ``validation`` and ``test``
whose string columns are ``source`` and ``target`` (the dates task adds ``locale`` and ``format``).
The result depends only on the arguments (and the pinned babel), and held-out examples never
occur in ``train``, so exact match on them measures generalisation, not recall.

* ``dates``   dates written out in words by `babel` in a dozen locales ("Tuesday, 3 March 1998",
  "3. März 1998", "3 de marzo de 1998", "1998年3月3日") mapped to ISO ``YYYY-MM-DD``. The
  ``validation`` and ``test`` splits are made of calendar dates that never occur in ``train``
  under any locale or format.
* ``numbers``  integers with thousands separators spelled out in English words: outputs of about
  100 characters, to check that what learns dates fast also learns long outputs.
* ``copy`` / ``reverse``  the toy task of "The Annotated Transformer": a sequence of symbols is
  copied (or reversed). A model that works learns it within seconds.

`BUILTIN_TASKS` names them and `load_task` builds one by name. Users' own files and datasets are
read by `miniformer_hf.data`.
"""

from __future__ import annotations

import datetime
import logging
import random
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Sequence

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, get_date_format
from datasets import Dataset, DatasetDict

from .errors import DataError

logger = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_TASKS",
    "DATE_FORMATS",
    "DEFAULT_LOCALES",
    "MAX_GENERATED_EXAMPLES",
    "TOY_TASKS",
    "BuiltinTask",
    "load_task",
    "make_date_dataset",
    "make_number_dataset",
    "make_toy_dataset",
    "number_in_words",
]


# Checked before any work starts, so a typo (--num-train 100000000) fails at once instead of after
# minutes and gigabytes. Far beyond what the models here can use: 2,000,000 examples are 40 epochs
# of the longest default run.
MAX_GENERATED_EXAMPLES = 2_000_000
# Built-in tasks log their progress when they generate at least this many examples.
_PROGRESS_EVERY = 100_000

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
    _check_counts(num_train, num_validation, num_test)
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
    """Build the built-in task ``name`` (one of `BUILTIN_TASKS`); ``kwargs`` go to its builder."""
    if name not in BUILTIN_TASKS:
        expected = f"one of {sorted(BUILTIN_TASKS)}, or a path to your own data file"
        raise DataError(None, f"unknown task {name!r}", expected)
    return BUILTIN_TASKS[name].build(**kwargs)
