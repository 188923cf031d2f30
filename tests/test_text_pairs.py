"""Tests for miniformer_hf.text_pairs: users' own JSON Lines, JSON, CSV and TSV files of text pairs."""

from __future__ import annotations

import json

import pytest

from miniformer_hf.errors import DataError
from miniformer_hf.text_pairs import MAX_TEXT_CHARACTERS, load_text_pairs


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
        return path, "line 3 has 1 field(s) but the header has 2"
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
    # Issue 23 item 5: a record whose field count differs from the header's is refused, never cut.
    if kind == "csv unquoted comma":
        path = tmp_path / "comma.csv"
        path.write_text("source,target\na,b\nhello, world,bonjour, monde\n", encoding="utf-8")
        return path, "line 3 has 4 field(s) but the header has 2"
    if kind == "csv extra field":
        path = tmp_path / "extra.csv"
        path.write_text("source,target\na,b,c\nd,e\n", encoding="utf-8")
        return path, "line 2 has 3 field(s) but the header has 2"
    if kind == "tsv extra field":
        path = tmp_path / "extra.tsv"
        path.write_text("source\ttarget\na\tb\nc\td\te\n", encoding="utf-8")
        return path, "line 3 has 3 field(s) but the header has 2"
    # Issue 23 item 9: an unclosed quote is named on the line it opens, not as a missing column later.
    if kind == "csv unclosed quote":
        path = tmp_path / "quote.csv"
        path.write_text('source,target\na,b\n"c,d\ne,f\ng,h\n', encoding="utf-8")
        return path, "line 3: a quoted field opens on this line and is never closed"
    if kind == "csv text after a closing quote":
        path = tmp_path / "after.csv"
        path.write_text('source,target\na,b\n"c"d,e\n', encoding="utf-8")
        return path, "line 3: malformed quoting"
    if kind == "csv quote closed lines later":
        path = tmp_path / "late.csv"
        path.write_text('source,target\n"a,b\nc,d",e,f\n', encoding="utf-8")
        return path, "line 2 has 3 field(s) but the header has 2 (a quoted field runs on to line 3"
    if kind == "csv repeated header":
        path = tmp_path / "twice.csv"
        path.write_text("source,target,target\na,b,c\n", encoding="utf-8")
        return path, "header repeats column(s) ['target']"
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
        "csv unquoted comma",
        "csv extra field",
        "tsv extra field",
        "csv unclosed quote",
        "csv text after a closing quote",
        "csv quote closed lines later",
        "csv repeated header",
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


def test_quoted_delimiters_blank_lines_and_multi_line_records_are_read(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('source,target\n"hello, world","bonjour, monde"\n\n"two\nlines",x\n  \nlast,y\n', encoding="utf-8")
    pairs = load_text_pairs(path, validation_fraction=0, with_origin=True)["train"]
    assert as_pairs(pairs) == [("hello, world", "bonjour, monde"), ("two\nlines", "x"), ("last", "y")]
    # A record is named by the line it starts on.
    assert pairs["origin"] == [f"{path} line 2", f"{path} line 4", f"{path} line 7"]
