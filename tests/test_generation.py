"""Tests for miniformer_hf.generation: batched generation with the outputs that were cut, the generation
length, and the checks made before generating (empty text, a source or a length over the positional table).
The input length + N rule of the paper's recipe is tested in test_recipe.py; the command line's use in test_faults."""

from __future__ import annotations

import pytest
import torch

from miniformer_hf import MiniformerConfig, MiniformerForConditionalGeneration
from miniformer_hf.errors import MiniformerError
from miniformer_hf.generation import (
    GenerationInputError,
    check_generation_inputs,
    generate_texts,
    generate_texts_with_cuts,
    generation_length,
    token_lengths,
)
from miniformer_hf.tokenization import train_char_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_char_tokenizer(["abcdef"])


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = MiniformerConfig(vocab_size=len(tokenizer), d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.0,
                              max_position_embeddings=12)  # fmt: skip
    model = MiniformerForConditionalGeneration(config)
    model.generation_config.max_new_tokens = 4
    return model


def test_generation_length_prefers_the_request_then_the_config(model):
    assert generation_length(model, 7) == 7
    assert generation_length(model) == 4
    assert generation_length(object()) is None  # no generation config: no limit known


def test_token_lengths_count_the_end_of_sequence_token(tokenizer):
    assert token_lengths(tokenizer, ["abc", "a"]) == [4, 2]


@pytest.mark.parametrize(
    "texts, max_new_tokens, fragment",
    [
        (["abc", "  "], None, "source text 2 is empty"),
        (["abcdefabcdefab"], None, "source text 1 is 15 tokens long"),
        (["abc"], 13, "--max-new-tokens 13 exceeds the model's positional table"),
    ],
)
def test_inputs_the_model_cannot_take_are_refused_before_generating(model, tokenizer, texts, max_new_tokens, fragment):
    with pytest.raises(GenerationInputError, match=fragment) as refused:
        check_generation_inputs(model, tokenizer, texts, max_new_tokens)
    assert isinstance(refused.value, MiniformerError) and "\n" not in str(refused.value)


def test_inputs_that_fit_return_the_generation_length(model, tokenizer):
    assert check_generation_inputs(model, tokenizer, ["abc", "abcdefabcde"]) == 4
    assert check_generation_inputs(model, tokenizer, [], 12) == 12


def test_generate_texts_in_batches_names_the_outputs_that_were_cut(model, tokenizer):
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] = -100.0  # never ends on its own: every output is cut
    model.train()
    texts, cut = generate_texts_with_cuts(model, tokenizer, ["abc", "ab", "f"], batch_size=2)
    assert len(texts) == 3 and cut == [0, 1, 2]
    assert model.training  # the mode is restored
    assert generate_texts(model, tokenizer, ["abc", "ab", "f"], batch_size=2) == texts
