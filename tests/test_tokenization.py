"""Tests for miniformer_hf.tokenization: char and BPE tokenizers, save/load, tokenize_pairs."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from miniformer_hf.data import DataError, make_date_dataset, make_toy_dataset
from miniformer_hf.tokenization import (
    SPECIAL_TOKENS,
    tokenize_pairs,
    train_bpe_tokenizer,
    train_char_tokenizer,
    train_tokenizer,
)


# The model config's defaults (pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1).
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

FREE_TEXT = [
    "Hello, world!",
    "  leading and trailing spaces  ",
    "tab\tand\nnewline",
    "punctuation , before . a space ?",
    "ünïcödé – «quotes» and 日本語",
    "emoji 🙂 too",
]


@pytest.fixture(scope="module")
def dates():
    return make_date_dataset(num_train=5_000, num_validation=500, num_test=500, seed=0)


@pytest.fixture(scope="module")
def date_tokenizer(dates):
    return train_char_tokenizer(list(dates["train"]["source"]) + list(dates["train"]["target"]))


@pytest.fixture(scope="module")
def bpe_tokenizer():
    return train_bpe_tokenizer(FREE_TEXT * 20, vocab_size=300)


def all_texts(dataset_dict):
    return [text for split in dataset_dict.values() for column in ("source", "target") for text in split[column]]


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_special_tokens_have_the_model_config_ids(kind, date_tokenizer, bpe_tokenizer):
    tokenizer = date_tokenizer if kind == "char" else bpe_tokenizer
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) == SPECIAL_TOKENS
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (
        PAD_ID,
        BOS_ID,
        EOS_ID,
        UNK_ID,
    )
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == list(SPECIAL_TOKENS)
    assert tokenizer.padding_side == "right"


def test_special_token_ids_agree_with_miniformer_config():
    from miniformer_hf import configuration_miniformer as configuration
    config = configuration.MiniformerConfig()
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id, config.decoder_start_token_id) == (
        PAD_ID,
        BOS_ID,
        EOS_ID,
        BOS_ID,
    )


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_encoding_appends_eos_and_no_bos(kind, date_tokenizer, bpe_tokenizer):
    tokenizer = date_tokenizer if kind == "char" else bpe_tokenizer
    ids = tokenizer("1998-03-03")["input_ids"]
    assert ids[-1] == EOS_ID
    assert BOS_ID not in ids and PAD_ID not in ids
    assert ids.count(EOS_ID) == 1


def test_char_tokenizer_has_one_token_per_character(date_tokenizer):
    text = "3 de marzo de 1998"
    ids = date_tokenizer(text)["input_ids"]
    assert len(ids) == len(text) + 1
    assert date_tokenizer.convert_ids_to_tokens(ids[:-1]) == list(text)
    # No merged pairs, however frequent they were in training.
    assert all(len(token) == 1 for token in date_tokenizer.get_vocab() if token not in SPECIAL_TOKENS)


def test_char_tokenizer_round_trips_every_date_source_and_target(dates, date_tokenizer):
    texts = all_texts(dates)
    encoded = date_tokenizer(texts)["input_ids"]
    # Held-out splits use no character that training text lacked.
    assert not any(UNK_ID in ids for ids in encoded)
    assert date_tokenizer.batch_decode(encoded, skip_special_tokens=True) == texts


def test_char_tokenizer_keeps_spaces_and_inserts_none():
    tokenizer = train_char_tokenizer(FREE_TEXT)
    for text in FREE_TEXT:
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_char_tokenizer_round_trips_toy_sequences():
    toy = make_toy_dataset("reverse", num_train=200, num_validation=20, num_test=20)
    tokenizer = train_tokenizer(list(toy["train"]["source"]), kind="char")
    texts = all_texts(toy)
    assert tokenizer.batch_decode(tokenizer(texts)["input_ids"], skip_special_tokens=True) == texts
    assert len(tokenizer) == 4 + len("abcdefghij ")


def test_char_tokenizer_maps_unseen_characters_to_unk():
    tokenizer = train_char_tokenizer(["abc"])
    a_id, b_id = tokenizer.convert_tokens_to_ids(["a", "b"])
    assert tokenizer("abz")["input_ids"] == [a_id, b_id, UNK_ID, EOS_ID]


def test_char_vocabulary_does_not_depend_on_text_order():
    texts = ["banana split", "apple pie", "cherry"]
    assert train_char_tokenizer(texts).get_vocab() == train_char_tokenizer(texts[::-1]).get_vocab()


def test_bpe_tokenizer_round_trips_free_text(bpe_tokenizer):
    unseen = ["never seen: ß ∑ 🚀", " x ,  y\n"]
    for text in FREE_TEXT + unseen:
        ids = bpe_tokenizer(text)["input_ids"]
        assert UNK_ID not in ids
        assert bpe_tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len(bpe_tokenizer) <= 300
    # Merges were learned: a frequent word is fewer tokens than bytes.
    assert len(bpe_tokenizer.tokenize("Hello")) < len("Hello")


def test_bpe_tokenizer_rejects_a_vocab_too_small_for_bytes():
    with pytest.raises(ValueError, match="at least 260"):
        train_bpe_tokenizer(FREE_TEXT, vocab_size=100)


def test_unknown_tokenizer_kind():
    with pytest.raises(ValueError, match=r"unknown tokenizer kind 'word'.*\['char', 'bpe'\]"):
        train_tokenizer(FREE_TEXT, kind="word")


def test_training_needs_text():
    with pytest.raises(ValueError, match="no text"):
        train_char_tokenizer([])


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_save_and_load_with_auto_tokenizer(kind, tmp_path, monkeypatch, dates, date_tokenizer, bpe_tokenizer):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = date_tokenizer if kind == "char" else bpe_tokenizer
    # Saved beside a model: a config.json in the same folder must not get in the way.
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "miniformer"}), encoding="utf-8")
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)

    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert loaded.all_special_tokens == tokenizer.all_special_tokens
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id, loaded.unk_token_id) == (0, 1, 2, 3)
    assert loaded.padding_side == "right"
    assert loaded.model_max_length == tokenizer.model_max_length
    texts = all_texts(dates)[:200] + FREE_TEXT
    assert loaded(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    if kind == "char":
        decoded = loaded.batch_decode(loaded(texts[:200])["input_ids"], skip_special_tokens=True)
        assert decoded == texts[:200]
    else:
        assert loaded.batch_decode(loaded(texts)["input_ids"], skip_special_tokens=True) == texts


def test_padding_is_on_the_right_with_pad_id(date_tokenizer):
    batch = date_tokenizer(["1998-03-03", "3 marzo 1998"], padding=True)
    assert batch["input_ids"][0][-1] == PAD_ID
    assert batch["attention_mask"][0] == [1] * 11 + [0] * 2


def test_tokenize_pairs_builds_model_inputs(dates, date_tokenizer):
    encoded = tokenize_pairs(dates["validation"], date_tokenizer)
    assert encoded.column_names == ["input_ids", "attention_mask", "labels"]
    assert len(encoded) == len(dates["validation"])
    for row, original in zip(encoded.select(range(50)), dates["validation"].select(range(50))):
        assert row["input_ids"][-1] == EOS_ID and row["labels"][-1] == EOS_ID
        assert row["attention_mask"] == [1] * len(row["input_ids"])
        assert len(row["labels"]) == 11  # YYYY-MM-DD + eos
        assert date_tokenizer.decode(row["input_ids"], skip_special_tokens=True) == original["source"]
        assert date_tokenizer.decode(row["labels"], skip_special_tokens=True) == original["target"]


def test_tokenize_pairs_refuses_to_truncate(dates, date_tokenizer):
    split = dates["test"]
    lengths = [len(source) + 1 for source in split["source"]]
    longest = max(lengths)
    expected = rf"example {lengths.index(longest)} has a source of {longest} tokens.*limit of {longest - 1}"
    with pytest.raises(DataError, match=expected):
        tokenize_pairs(split, date_tokenizer, max_source_length=longest - 1)
    with pytest.raises(DataError, match=r"example 0 has a target of 11 tokens"):
        tokenize_pairs(split, date_tokenizer, max_target_length=10)
    assert len(tokenize_pairs(split, date_tokenizer, max_source_length=longest, max_target_length=11)) == len(split)


def test_tokenize_pairs_defaults_to_model_max_length():
    tokenizer = train_char_tokenizer(["abcdef"], model_max_length=4)
    from datasets import Dataset

    dataset = Dataset.from_dict({"source": ["abc", "abcdef"], "target": ["a", "b"]})
    with pytest.raises(DataError, match="example 1 has a source of 7 tokens"):
        tokenize_pairs(dataset, tokenizer)


def test_tokenize_pairs_needs_source_and_target():
    from datasets import Dataset

    tokenizer = train_char_tokenizer(["ab"])
    with pytest.raises(DataError, match=r"no column\(s\) \['target'\]"):
        tokenize_pairs(Dataset.from_dict({"source": ["a"]}), tokenizer)


# --------------------------------------------------------------------------------------------------------------------
# User text is text: the strings of the special tokens in data or inputs stay characters (issue 14, item 7)
# --------------------------------------------------------------------------------------------------------------------

LITERAL_SPECIALS = ["x <pad> y </s> z", "a b </s> c d", "<s>start", "end<unk>", "</s></s><pad>", "plain"]


@pytest.fixture(scope="module", params=["char", "bpe"])
def literal_tokenizer(request):
    # Data that itself holds the special-token strings, often (a BPE trainer sees them as mergeable text).
    texts = LITERAL_SPECIALS * 50 + ["</s>"] * 200 + ["<pad>\n<s> <unk>"] * 200
    if request.param == "char":
        return train_char_tokenizer(texts)
    return train_bpe_tokenizer(texts, vocab_size=400)


def assert_text_round_trips(tokenizer, texts):
    encoded = tokenizer(texts)["input_ids"]
    for text, ids in zip(texts, encoded):
        assert ids[-1] == EOS_ID and EOS_ID not in ids[:-1], (text, ids)
        assert not {PAD_ID, BOS_ID, UNK_ID} & set(ids), (text, ids)
    assert tokenizer.batch_decode(encoded, skip_special_tokens=True) == texts


def test_special_token_strings_in_text_stay_characters(literal_tokenizer):
    assert_text_round_trips(literal_tokenizer, LITERAL_SPECIALS)
    # Special tokens are still the model's: eos is appended by the post-processor and skipped on decoding.
    assert literal_tokenizer.convert_ids_to_tokens([PAD_ID, BOS_ID, EOS_ID, UNK_ID]) == list(SPECIAL_TOKENS)


def test_special_token_strings_in_training_pairs_stay_characters(literal_tokenizer):
    from datasets import Dataset

    pairs = Dataset.from_dict({"source": LITERAL_SPECIALS, "target": LITERAL_SPECIALS[::-1]})
    encoded = tokenize_pairs(pairs, literal_tokenizer)
    for row, source, target in zip(encoded, LITERAL_SPECIALS, LITERAL_SPECIALS[::-1]):
        # One eos, at the end: a "</s>" in a target does not end the sequence the model learns.
        assert row["labels"].count(EOS_ID) == 1 and row["labels"][-1] == EOS_ID
        assert row["input_ids"].count(EOS_ID) == 1 and row["input_ids"][-1] == EOS_ID
        # Evaluation decodes labels and predictions the same way: the target comes back as written.
        assert literal_tokenizer.decode(row["labels"], skip_special_tokens=True) == target
        assert literal_tokenizer.decode(row["input_ids"], skip_special_tokens=True) == source


def test_special_token_strings_survive_generation(literal_tokenizer):
    """`generate` sees the whole input, and an output spelling "</s>" is text, not a stop."""
    import torch

    from conftest import tiny_config
    from miniformer_hf import MiniformerForConditionalGeneration

    torch.manual_seed(0)
    model = MiniformerForConditionalGeneration(tiny_config(vocab_size=len(literal_tokenizer))).eval()
    text = "a b </s> c d"
    inputs = literal_tokenizer([text], return_tensors="pt")
    assert inputs["input_ids"][0].tolist().count(EOS_ID) == 1
    # Force the decoder to spell the input back (an untrained model would not): the literal "</s>" in the middle of
    # the output must neither stop generation nor vanish on decoding.
    target = literal_tokenizer(text)["input_ids"]

    def spell_the_input(batch_id, prefix):
        step = prefix.shape[-1] - 1
        return [target[step]] if step < len(target) else [EOS_ID]

    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=len(target) + 2, prefix_allowed_tokens_fn=spell_the_input)
    assert literal_tokenizer.batch_decode(generated, skip_special_tokens=True) == [text]


def test_saved_tokenizer_keeps_special_token_strings_as_text_in_a_fresh_process(literal_tokenizer, tmp_path):
    import subprocess
    import sys

    literal_tokenizer.save_pretrained(tmp_path)
    probe = (
        "import json, sys\n"
        "from transformers import AutoTokenizer\n"
        "tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "texts = json.loads(sys.argv[2])\n"
        "ids = tokenizer(texts)['input_ids']\n"
        "print(json.dumps([ids, tokenizer.batch_decode(ids, skip_special_tokens=True)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(tmp_path), json.dumps(LITERAL_SPECIALS)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    ids, decoded = json.loads(result.stdout.strip().splitlines()[-1])
    assert ids == literal_tokenizer(LITERAL_SPECIALS)["input_ids"]
    assert decoded == LITERAL_SPECIALS
    for row in ids:
        assert EOS_ID not in row[:-1]
