"""Users' own text-pair files: JSON Lines, JSON (an array of objects), CSV and TSV.

`load_text_pairs` reads one file, several files, or a mapping of split names to files into a
`datasets.DatasetDict` whose splits have string columns ``source`` and ``target`` (whatever the
columns were called in the files). Anything wrong with a file (missing, empty, not UTF-8, invalid
JSON, a missing column, a null or non-string value, a CSV/TSV record whose field count differs
from the header's, an unclosed quote) raises `DataError`, whose message is one line naming the
file, the line, the problem and what was expected.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Iterable, Mapping, Sequence

from datasets import Dataset, DatasetDict, concatenate_datasets

from .errors import DataError

__all__ = [
    "CSV_SUFFIXES",
    "JSON_SUFFIXES",
    "MAX_TEXT_CHARACTERS",
    "TEXT_PAIR_SUFFIXES",
    "hold_out",
    "load_text_pairs",
    "read_csv_rows",
    "read_json_rows",
    "read_text",
]

# A runaway line fails at once instead of after minutes: the model's positional table holds 1,024
# tokens, far below this.
MAX_TEXT_CHARACTERS = 100_000

JSON_SUFFIXES = (".jsonl", ".json")
CSV_SUFFIXES = (".csv", ".tsv")
_CSV_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_QUOTING_EXAMPLES = {".csv": '"hello, world","bonjour, monde"', ".tsv": "a tab inside a field, quoted"}
TEXT_PAIR_SUFFIXES = JSON_SUFFIXES + tuple(_CSV_DELIMITERS)


def read_text(path: str) -> str:
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



def read_json_rows(path: str, suffix: str, text: str) -> Iterable[tuple[str, object]]:
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



def read_csv_rows(path: str, suffix: str, text: str, columns: Sequence[str]) -> Iterable[tuple[str, dict[str, str]]]:
    """Yield (location, row) for each record of a CSV/TSV file after its header row.

    A record must have exactly one field per header column: an unquoted delimiter inside a text
    (``hello, world,bonjour, monde``) or a missing field shifts the columns after it, so it is an
    error, never silently truncated or padded. A location names the line the record starts on,
    since a quoted field may span lines.
    """
    kind = suffix[1:].upper()
    delimiter = _CSV_DELIMITERS[suffix]
    # strict: a quote that is never closed, or text after a closing quote, is an error, not a guess.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                problem = f"line {start}: a quoted field opens on this line and is never closed"
                expected = 'a closing quote for every opening one (a quote inside a quoted field is written "")'
            else:
                problem = f"line {start}: malformed quoting, near line {reader.line_num} ({error})"
                expected = f'well-formed {kind}: a field that contains a quote is quoted, its quotes doubled ("")'
            raise DataError(path, problem, expected) from error
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # a blank line
        if header is None:
            header = record
            repeated = sorted({name for name in header if header.count(name) > 1})
            missing = [column for column in columns if column not in header]
            if repeated:
                problem = f"header repeats column(s) {repeated} (header: {header})"
                raise DataError(path, problem, "distinct column names")
            if missing:
                raise DataError(
                    path,
                    f"header has no column(s) {missing} (header: {header})",
                    f"a header row naming {list(columns)} (or name yours with --source-column/--target-column, "
                    "source_column/target_column in Python)",
                )
            continue
        if len(record) != len(header):
            spans = ""
            if reader.line_num > start:
                spans = f" (a quoted field runs on to line {reader.line_num}: is a quote unclosed?)"
            raise DataError(
                path,
                f"line {start} has {len(record)} field(s) but the header has {len(header)}{spans}",
                f"one field per header column; quote a field that contains the delimiter "
                f"({_QUOTING_EXAMPLES[suffix]})",
            )
        yield f"line {start}", dict(zip(header, record))


def _read_pairs(path: str, source_column: str, target_column: str, with_origin: bool = False) -> Dataset:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in TEXT_PAIR_SUFFIXES:
        problem = f"unsupported file extension {suffix or '(none)'!r}"
        raise DataError(path, problem, f"one of {list(TEXT_PAIR_SUFFIXES)}")
    text = read_text(path)
    columns = (source_column, target_column)
    sources: list[str] = []
    targets: list[str] = []
    origins: list[str] = []

    if suffix in JSON_SUFFIXES:
        rows = read_json_rows(path, suffix, text)
    else:
        rows = read_csv_rows(path, suffix, text, columns)
    for where, row in rows:
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
    non-UTF-8 file, invalid JSON, a missing column, a null/non-string value, or a CSV/TSV record
    with the wrong number of fields or an unclosed quote.
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
        splits["train"], splits["validation"] = hold_out(
            splits["train"], validation_fraction, seed, None,
            f"a validation fraction of {validation_fraction}",
            "more examples, or a separate validation file (--validation-file)",
        )  # fmt: skip
    return DatasetDict(splits)


def hold_out(train: Dataset, fraction: float, seed: int, where: str | None, what: str, expected: str):
    """``(train, validation)``: ``fraction`` of ``train``, shuffled with ``seed``, held out (at least one)."""
    num_validation = max(1, round(len(train) * fraction))
    if len(train) - num_validation < 1:
        raise DataError(where, f"only {len(train)} example(s), too few to hold out {what}", expected)
    parts = train.train_test_split(test_size=num_validation, seed=seed, shuffle=True)
    return parts["train"], parts["test"]
