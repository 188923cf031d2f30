"""The data a run trains on: datasets from the Hugging Face Hub or a local folder, and every data name.

* `load_dataset_pairs`: a Hub dataset id, a local dataset folder, a ``save_to_disk`` folder or a
  single ``.parquet``/``.arrow`` file, with a ``translation`` column of ``{language: text}`` dicts
  or two plain text columns, checked (columns, languages, types, unreadable data files, empty
  splits) before any example is tokenized. Splits come back with string columns ``source`` and
  ``target``.
* `dataset_identity`: what a dataset source is (resolved path and file hashes, or Hub repo and
  commit), to tell later whether the data a run consumed have changed.

Anything wrong raises `DataError`, whose message is one line naming the dataset (or the data file
and line), the problem and what was expected.

This is also where the package's data names are found: the built-in generated tasks
(`miniformer_hf.tasks`: dates, numbers, copy/reverse, `load_task`) and users' text-pair files
(`miniformer_hf.text_pairs`: `load_text_pairs`) are re-exported, so
``from miniformer_hf.data import load_task, load_text_pairs`` works.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from functools import partial
from typing import Sequence

from datasets import Dataset, DatasetDict

from .errors import DataError
from .tasks import (
    BUILTIN_TASKS,
    DATE_FORMATS,
    DEFAULT_LOCALES,
    MAX_GENERATED_EXAMPLES,
    TOY_TASKS,
    BuiltinTask,
    load_task,
    make_date_dataset,
    make_number_dataset,
    make_toy_dataset,
    number_in_words,
)
from .text_pairs import (
    CSV_SUFFIXES,
    JSON_SUFFIXES,
    MAX_TEXT_CHARACTERS,
    TEXT_PAIR_SUFFIXES,
    hold_out,
    load_text_pairs,
    read_csv_rows,
    read_json_rows,
    read_text,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_TASKS",
    "DATE_FORMATS",
    "DEFAULT_LOCALES",
    "MAX_GENERATED_EXAMPLES",
    "MAX_TEXT_CHARACTERS",
    "TOY_TASKS",
    "BuiltinTask",
    "DataError",
    "dataset_identity",
    "load_dataset_pairs",
    "load_task",
    "load_text_pairs",
    "make_date_dataset",
    "make_number_dataset",
    "make_toy_dataset",
    "number_in_words",
]


# ---------------------------------------------------------------------------------------------
# Datasets from the Hugging Face Hub, local dataset folders and save_to_disk folders
# ---------------------------------------------------------------------------------------------

TRANSLATION_COLUMN = "translation"
_STRING_DTYPES = ("string", "large_string")
_DATASET_EXPECTED = (
    "a Hub dataset id such as 'wmt/wmt14' (check the spelling, --dataset-revision, and HF_TOKEN for a private "
    "dataset), a local dataset folder, a folder written by Dataset.save_to_disk, or a .parquet/.arrow file"
)
# A single file that `--dataset` loads itself, by the `datasets` builder for its format.
_DATASET_FILE_BUILDERS = {".parquet": "parquet", ".arrow": "arrow"}
_SPLITS_USED = ("train", "validation", "test")


def _is_saved_to_disk(path: str) -> bool:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return os.path.isfile(os.path.join(path, "dataset_dict.json")) or os.path.isfile(os.path.join(path, "state.json"))


def _looks_like_a_path(name: str) -> bool:
    """A name that cannot be a Hub id ("owner/name" at most), so it must have meant a local path."""
    return (
        name.startswith((".", "/", "~", os.sep))
        or (os.altsep is not None and os.altsep in name)
        or name.count("/") > 1
        or os.path.splitext(name)[1].lower() in (*_DATASET_FILE_BUILDERS, *TEXT_PAIR_SUFFIXES)
    )


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _empty_split(name: str, split: str, detail: str = "no pair with both a source and a target text") -> DataError:
    return DataError(
        name,
        f"split {split!r} is empty ({detail})",
        "at least one non-empty pair in every split used (train, validation, test)",
    )


def _load_saved(path: str, config: str | None, streaming: bool) -> dict:
    """The used splits of a `save_to_disk` folder, each read on its own, an empty one refused by name.

    (`datasets.load_from_disk` fails with an IndexError on a split saved with no rows.)
    """
    from datasets import load_from_disk

    if config is not None:
        raise DataError(
            path, "a save_to_disk folder has no configurations", "no --dataset-config with a saved dataset folder"
        )
    dict_file = os.path.join(path, "dataset_dict.json")
    try:
        if os.path.isfile(dict_file):
            with open(dict_file, encoding="utf-8") as handle:
                names = json.load(handle)["splits"]
            if "train" not in names:
                raise DataError(path, f"no 'train' split (splits: {sorted(names)})", "a dataset with a 'train' split")
            folders = {split: os.path.join(path, split) for split in names if split in _SPLITS_USED}
        else:
            folders = {"train": path}
        splits = {}
        for split, folder in folders.items():
            with open(os.path.join(folder, "state.json"), encoding="utf-8") as handle:
                if not json.load(handle).get("_data_files"):
                    raise _empty_split(path, split, "saved with no rows")
            splits[split] = load_from_disk(folder)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(
            path,
            f"cannot read the saved dataset ({_first_line(error)})",
            "a complete folder written by Dataset.save_to_disk or DatasetDict.save_to_disk",
        ) from error
    if streaming:
        splits = {split: dataset.to_iterable_dataset() for split, dataset in splits.items()}
    return splits


def _open_dataset(name: str, config: str | None, revision: str | None, streaming: bool):
    """`datasets.load_dataset` (Hub id, data folder or data file) or a save_to_disk folder, as a dict of splits."""
    import datasets

    if not name.strip():
        raise DataError(None, "the dataset name is empty", _DATASET_EXPECTED)
    local = os.path.exists(name)
    if local and revision is not None:
        raise DataError(
            name,
            f"--dataset-revision {revision!r} given with a local {'folder' if os.path.isdir(name) else 'file'}; a "
            "revision only applies to a Hub dataset",
            "no --dataset-revision with a local dataset (its files are the only version), or a Hub dataset id",
        )
    if not local and _looks_like_a_path(name):
        raise DataError(name, "no such file or folder", _DATASET_EXPECTED)
    if os.path.isdir(name) and _is_saved_to_disk(name):
        return _load_saved(name, config, streaming)
    arguments = dict(path=name, name=config, revision=revision)
    if os.path.isfile(name):
        suffix = os.path.splitext(name)[1].lower()
        if suffix in TEXT_PAIR_SUFFIXES:
            raise DataError(
                name,
                f"a {suffix} file given to --dataset",
                f"--train-file {name} (and --validation-file/--test-file) for JSON Lines, JSON, CSV or TSV pairs; "
                "--dataset takes a .parquet/.arrow file, a dataset folder or a Hub id",
            )
        if suffix not in _DATASET_FILE_BUILDERS:
            raise DataError(name, f"unsupported file type {suffix or '(none)'!r}", _DATASET_EXPECTED)
        if config is not None:
            raise DataError(name, "a single data file has no configurations", "no --dataset-config with a data file")
        arguments = dict(path=_DATASET_FILE_BUILDERS[suffix], data_files={"train": os.path.abspath(name)})
    try:
        loaded = datasets.load_dataset(**arguments, streaming=streaming)
    except ConnectionError as error:  # HF_HUB_OFFLINE=1, or no network, and nothing cached
        raise DataError(
            name,
            f"the Hub cannot be reached and the dataset is not cached ({error})",
            "network access (unset HF_HUB_OFFLINE), a dataset cached by an earlier run, or a local folder",
        ) from error
    except FileNotFoundError as error:  # includes datasets' DatasetNotFoundError (unknown id or revision)
        raise DataError(name, f"dataset not found ({error})", _DATASET_EXPECTED) from error
    except ValueError as error:  # an unknown configuration name, among others; the message lists the valid ones
        if _is_reading_failure(error):
            raise  # a data file that cannot be read: `_reading_errors` names it
        raise DataError(
            name, f"cannot load the dataset ({error})", "an existing --dataset-config (the message lists them)"
        ) from error
    return dict(loaded)


# ---------------------------------------------------------------------------------------------
# Data files that `datasets` cannot read, said in one line
# ---------------------------------------------------------------------------------------------


class _FailedFiles(logging.Handler):
    """Collects the files that `datasets`' readers log as failing (they log each failure over many
    lines before raising); what is collected names the file in the one-line error instead."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.files: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = re.search(r"file '([^']+)'", record.getMessage())
        if match and record.levelno >= logging.WARNING and match.group(1) not in self.files:
            self.files.append(match.group(1))


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def _is_reading_failure(error: BaseException) -> bool:
    """An error of `datasets`, pyarrow or pandas reading a data file (not of the request itself); a stream
    meets them unwrapped, as it reads."""
    import pyarrow
    from datasets.exceptions import DatasetGenerationError
    from datasets.table import CastError
    from pandas.errors import ParserError

    failures = (DatasetGenerationError, CastError, pyarrow.ArrowException, ParserError, UnicodeDecodeError)
    return any(isinstance(cause, failures) for cause in _causes(error))


def _local_file(name: str, file: str) -> str:
    """``file`` as the user would write it: relative to the dataset folder's parent when it lies inside it."""
    file = file.split("::")[-1].removeprefix("file://")
    if os.path.isdir(name) and os.path.abspath(file).startswith(os.path.abspath(name) + os.sep):
        return os.path.join(name, os.path.relpath(file, name))
    return file


def _first_bad_line(name: str, files: Sequence[str]) -> DataError | None:
    """The first malformed line of a local JSON, JSON Lines, CSV or TSV data file (the failing ones,
    else all under ``name``), read as ``--train-file`` reads them, as a `DataError` naming the file
    and line: datasets' own readers say "row 20" of a batch, or "row 2" counted from 0, or nothing."""
    readable = JSON_SUFFIXES + CSV_SUFFIXES
    candidates = [file for file in files if os.path.isfile(file)]
    if not candidates and os.path.isdir(name):
        candidates = sorted(
            os.path.join(folder, file)
            for folder, subfolders, filenames in os.walk(name)
            for file in filenames
            if not file.startswith(".") and os.path.splitext(file)[1].lower() in readable
        )
    for file in candidates:
        suffix = os.path.splitext(file)[1].lower()
        if suffix not in readable or os.path.getsize(file) == 0:
            continue
        shown = _local_file(name, file)
        try:
            text = read_text(shown)
            if suffix in JSON_SUFFIXES:
                rows = read_json_rows(shown, suffix, text)
            else:
                rows = read_csv_rows(shown, suffix, text, columns=())
            for _ in rows:
                pass
        except DataError as error:
            return error
        except OSError:
            continue
    return None


def _reading_error(name: str, error: BaseException, files: Sequence[str]) -> DataError:
    """One line for a data file that `datasets` could not read: which file, and why."""
    from datasets.table import CastError

    causes = _causes(error)
    where = _local_file(name, files[0]) if files else name
    cast = next((cause for cause in causes if isinstance(cause, CastError)), None)
    if cast is not None:
        return DataError(
            where,
            f"its columns {sorted(cast.table_column_names)} differ from those of the dataset's other data files "
            f"{sorted(cast.requested_column_names)}",
            "the same column names in the files of every split (train, validation, test): rename the columns of "
            "one of them",
        )
    bad_line = _first_bad_line(name, files)
    if bad_line is not None:
        return bad_line
    return DataError(
        where,
        f"a data file cannot be read ({_first_line(causes[-1])})",
        "data files that `datasets` can read: check the file's format and that every row has the same fields",
    )


@contextlib.contextmanager
def _reading_errors(name: str):
    """Turn a data file that `datasets` cannot read into a one-line `DataError`, and keep `datasets`'
    own multi-line logging of the failure off the console."""
    failed = _FailedFiles()
    readers = logging.getLogger("datasets.packaged_modules")
    propagate = readers.propagate
    readers.addHandler(failed)
    readers.propagate = False
    try:
        yield
    except Exception as error:
        if isinstance(error, DataError) or not _is_reading_failure(error):
            raise
        raise _reading_error(name, error, failed.files) from error
    finally:
        readers.removeHandler(failed)
        readers.propagate = propagate


# ---------------------------------------------------------------------------------------------
# Checking and flattening the pairs
# ---------------------------------------------------------------------------------------------

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
    """Source/target pairs from a `datasets` dataset: a Hub repo id, a local dataset folder, a
    `save_to_disk` folder or a single ``.parquet``/``.arrow`` file, with splits ``train``,
    ``validation`` and (if the dataset has one) ``test``.

    Two layouts are understood: a ``translation`` column of ``{language: text}`` dicts (the Hub's
    translation datasets, e.g. ``wmt/wmt14``; pass ``source_lang`` and ``target_lang``), or plain text
    columns ``source_column`` and ``target_column``. Either way the result has string columns
    ``source`` and ``target`` only; rows with an empty or missing side are dropped.

    Without a ``validation`` split, ``validation_split_percentage`` percent of ``train`` (shuffled with
    ``seed``) becomes one. With ``streaming=True`` the splits are `datasets.IterableDataset` objects read
    as they are consumed, and a missing validation split is the first ``validation_examples`` pairs
    of ``train`` (which training then skips).

    Everything is checked before any example is tokenized: an unknown dataset, revision or
    configuration, a revision for a local dataset (revisions are the Hub's), no ``train`` split, a
    missing column or language, a column that is not text, data files that cannot be read (a
    malformed JSON line, files whose columns differ), or an empty split raises `DataError` with a
    one-line message.
    """
    if not 0 <= validation_split_percentage < 100:
        raise DataError(
            None, f"validation split percentage {validation_split_percentage}", "a percentage in [0, 100), e.g. 5"
        )
    with _reading_errors(name):
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
        if split not in _SPLITS_USED:
            continue
        if dataset.features is None:  # a stream of JSON or CSV files: typed from its first rows
            if _is_empty(dataset):
                raise _empty_split(name, split)
            dataset = dataset._resolve_features()
        features = dataset.features
        source, target = _pair_columns(name, split, features, source_lang, target_lang, source_column, target_column)
        pairs[split] = _as_pairs(dataset, source, target)
    if "validation" not in pairs and (streaming or validation_split_percentage > 0):
        train = pairs["train"]
        if streaming:
            pairs["validation"] = train.take(validation_examples)
            pairs["train"] = train.skip(validation_examples)
        else:
            pairs["train"], pairs["validation"] = hold_out(
                train, validation_split_percentage / 100, seed, name, f"{validation_split_percentage}% for validation",
                "more examples, a 'validation' split, or --validation-split-percentage 0",
            )  # fmt: skip
    for split, dataset in pairs.items():
        if _is_empty(dataset):
            raise _empty_split(name, split)
    return pairs if streaming else DatasetDict(pairs)


# ---------------------------------------------------------------------------------------------
# What a dataset source is, to tell later whether its data changed
# ---------------------------------------------------------------------------------------------


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(partial(handle.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _local_files(path: str) -> list[str]:
    """The files of a local dataset, sorted; hidden files and folders (``.cache``, ``.git``) left out,
    as `datasets` leaves them out."""
    if os.path.isfile(path):
        return [path]
    found = []
    for folder, subfolders, filenames in os.walk(path):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found.extend(os.path.join(folder, name) for name in filenames if not name.startswith("."))
    return sorted(found)


def dataset_identity(name: str, config: str | None = None, revision: str | None = None) -> dict:
    """What the dataset ``name`` is, as a JSON-ready dict whose ``"fingerprint"`` changes when its data do.

    * A local file or folder (a dataset folder, a ``save_to_disk`` folder, a ``.parquet`` file, or a
      text-pair file): ``{"kind": "local", "path": <resolved path>, "files": [{"path", "size",
      "sha256"}, ...]}``: every file's content is hashed, so an edit is seen even when the size and
      modification time are kept (``cp -p``, a checkout).
    * A Hub dataset: ``{"kind": "hub", "repo", "config", "revision", "commit"}``, where ``commit`` is
      the commit ``revision`` (default ``main``) resolves to now, asked of the Hub. When the Hub cannot
      be reached, ``commit`` is None and ``"resolved"`` False: the fingerprint then only holds the
      revision as given, so a moved branch cannot be seen (pin a commit with ``--dataset-revision``).

    ``fingerprint`` is the SHA-256 of the rest; equal fingerprints mean the same data. Raises
    `DataError` for an empty name or an unreadable local file.
    """
    if not name.strip():
        raise DataError(None, "the dataset name is empty", _DATASET_EXPECTED)
    if os.path.exists(name):
        root = os.path.realpath(name)
        try:
            files = [
                {"path": os.path.relpath(file, root) if file != root else os.path.basename(root),
                 "size": os.path.getsize(file), "sha256": _file_sha256(file)}
                for file in _local_files(root)
            ]  # fmt: skip
        except OSError as error:
            raise DataError(name, f"cannot read the dataset's files ({error})", "readable files") from error
        identity = {"kind": "local", "path": root, "config": config, "files": files}
    else:
        identity = {
            "kind": "hub", "repo": name, "config": config, "revision": revision, "commit": None, "resolved": False
        }  # fmt: skip
        try:
            from huggingface_hub import HfApi

            identity["commit"] = HfApi().dataset_info(name, revision=revision).sha
            identity["resolved"] = identity["commit"] is not None
        except Exception as error:  # offline, unknown repo, no permission: the identity says it is unresolved
            logger.info("Could not resolve the revision of dataset %s (%s)", name, _first_line(error))
    identity["fingerprint"] = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return identity
