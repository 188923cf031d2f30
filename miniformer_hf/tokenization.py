"""Tokenizers trained from the task's own text, wrapped for `transformers`.

Two kinds, both built with the `tokenizers` library and wrapped as a `PreTrainedTokenizerFast`:

* ``char``  one token per Unicode character (a BPE model with no merges).
  The default for the built-in tasks: dates and toy sequences need no more.
* ``bpe``   byte-level BPE (as in GPT-2), for users' own free text: every string round-trips,
  with no unknown tokens.

Both agree with `MiniformerConfig`'s defaults on the special tokens::

    id 0 "<pad>"  pad_token_id
    id 1 "<s>"    bos_token_id = decoder_start_token_id (prepended by the model, never by us)
    id 2 "</s>"   eos_token_id, appended to every encoded sequence by the post-processor
    id 3 "<unk>"

so ``tokenizer("3 March 1998").input_ids`` ends with 2, labels end with eos, and
``tokenizer.decode(ids, skip_special_tokens=True)`` gives the text back. User text is text: the strings
``"<pad>"``, ``"<s>"``, ``"</s>"`` and ``"<unk>"`` written in data or in a ``generate`` input encode as their
characters (``split_special_tokens=True``, saved in ``tokenizer_config.json``), so a target holding ``"</s>"`` is
not cut short and decodes back as written; only the ids 0-3 are special. ``save_pretrained(dir)``
writes ``tokenizer.json`` and ``tokenizer_config.json`` and ``AutoTokenizer.from_pretrained(dir)``
loads an equal tokenizer.
"""

from __future__ import annotations

import logging
from typing import Iterable

from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .data import DataError


logger = logging.getLogger(__name__)

__all__ = [
    "SPECIAL_TOKENS",
    "TOKENIZER_KINDS",
    "tokenize_pairs",
    "train_bpe_tokenizer",
    "train_char_tokenizer",
    "train_tokenizer",
]

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "<s>", "</s>", "<unk>"
# In id order: the trainers put special tokens first, so these get ids 0, 1, 2, 3.
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
EOS_TOKEN_ID = SPECIAL_TOKENS.index(EOS_TOKEN)

TOKENIZER_KINDS: tuple[str, ...] = ("char", "bpe")

DEFAULT_MODEL_MAX_LENGTH = 1024


def _wrap(tokenizer: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    """Append eos to every sequence and wrap ``tokenizer`` with the special tokens named."""
    vocab = tokenizer.get_vocab()
    misplaced = [(token, vocab.get(token)) for i, token in enumerate(SPECIAL_TOKENS) if vocab.get(token) != i]
    if misplaced:  # a guard against a `tokenizers` release that orders its trainer's output differently
        raise RuntimeError(f"special tokens at unexpected ids {misplaced}; expected {list(enumerate(SPECIAL_TOKENS))}")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}",
        pair=f"$A {EOS_TOKEN} $B:1 {EOS_TOKEN}:1",
        special_tokens=[(EOS_TOKEN, EOS_TOKEN_ID)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        padding_side="right",
        model_max_length=model_max_length,
        # The default clean-up rewrites " ," as "," and the like, so decoding would not round-trip.
        clean_up_tokenization_spaces=False,
        # User text is text: a literal "</s>" in the data encodes as its characters, never as end-of-sequence.
        split_special_tokens=True,
    )


def _as_list(texts: Iterable[str]) -> list[str]:
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise ValueError("cannot train a tokenizer on no text; expected at least one training string")
    return texts


def train_char_tokenizer(
    texts: Iterable[str], *, model_max_length: int = DEFAULT_MODEL_MAX_LENGTH
) -> PreTrainedTokenizerFast:
    """A character-level tokenizer whose vocabulary is every character that occurs in ``texts``.

    Characters not seen in ``texts`` encode as ``<unk>``. Decoding joins characters without
    inserting anything, so spaces, newlines and the rest round-trip exactly.
    """
    # BPE starts from single characters; allowed no merges (vocab_size=1 is below the alphabet
    # size, and the alphabet is always kept) it is exactly a character tokenizer, and without a
    # pre-tokenizer it encodes several times faster than splitting every character with a regex.
    tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tokenizer.decoder = decoders.Fuse()
    trainer = trainers.BpeTrainer(vocab_size=1, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator(_as_list(texts), trainer=trainer)
    logger.info("Trained a character tokenizer with %d tokens", tokenizer.get_vocab_size())
    return _wrap(tokenizer, model_max_length)


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 2_000,
    *,
    min_frequency: int = 2,
    model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with at most ``vocab_size`` tokens, trained on ``texts``.

    The 256 byte tokens are always in the vocabulary, so any string encodes without ``<unk>``
    and decodes back exactly; ``vocab_size`` must leave room for them and the special tokens.
    """
    minimum = len(SPECIAL_TOKENS) + len(pre_tokenizers.ByteLevel.alphabet())
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size} is too small for byte-level BPE; expected at least {minimum} "
            "(256 bytes + 4 special tokens), or use the char tokenizer for a small vocabulary"
        )
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_as_list(texts), trainer=trainer)
    logger.info("Trained a byte-level BPE tokenizer with %d tokens", tokenizer.get_vocab_size())
    return _wrap(tokenizer, model_max_length)


def train_tokenizer(texts: Iterable[str], kind: str = "char", **kwargs) -> PreTrainedTokenizerFast:
    """Train a tokenizer of ``kind`` ("char" or "bpe"); ``kwargs`` go to its trainer function."""
    if kind == "char":
        return train_char_tokenizer(texts, **kwargs)
    if kind == "bpe":
        return train_bpe_tokenizer(texts, **kwargs)
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {list(TOKENIZER_KINDS)}")


def _resolve_limit(limit: int | None, tokenizer: PreTrainedTokenizerFast) -> int | None:
    if limit is not None:
        return limit
    # Unset model_max_length is a huge sentinel (VERY_LARGE_INTEGER); treat that as no limit.
    model_max_length = getattr(tokenizer, "model_max_length", None)
    return model_max_length if isinstance(model_max_length, int) and model_max_length < 1_000_000 else None


def tokenize_pairs(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerFast,
    max_source_length: int | None = None,
    max_target_length: int | None = None,
) -> Dataset:
    """Encode the ``source`` and ``target`` columns as ``input_ids``, ``attention_mask`` and ``labels``.

    Both sequences end with eos; sequences are not padded (a collator pads each batch). The
    other columns are dropped. Nothing is truncated: a sequence longer than its limit (``None``
    means the tokenizer's ``model_max_length``) raises `DataError` naming the example.
    """
    missing = [column for column in ("source", "target") if column not in dataset.column_names]
    if missing:
        raise DataError(
            None,
            f"dataset has no column(s) {missing} (columns: {dataset.column_names})",
            "columns 'source' and 'target'",
        )
    limits = {
        "source": _resolve_limit(max_source_length, tokenizer),
        "target": _resolve_limit(max_target_length, tokenizer),
    }

    def encode(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        sources = tokenizer(batch["source"], truncation=False, return_token_type_ids=False)
        targets = tokenizer(batch["target"], truncation=False, return_token_type_ids=False, return_attention_mask=False)
        for column, encoded in (("source", sources), ("target", targets)):
            limit = limits[column]
            if limit is None:
                continue
            for index, ids in zip(indices, encoded["input_ids"]):
                if len(ids) > limit:
                    raise DataError(
                        None,
                        f"example {index} has a {column} of {len(ids)} tokens (eos included), "
                        f"over the limit of {limit}",
                        f"at most {limit} tokens per {column} (raise max_{column}_length, within the model's "
                        "max_position_embeddings, or drop the long examples)",
                    )
        return {
            "input_ids": sources["input_ids"],
            "attention_mask": sources["attention_mask"],
            "labels": targets["input_ids"],
        }

    return dataset.map(
        encode,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        desc="Tokenizing",
    )
