"""The tiny model, character tokenizer and attention examples that the attention tests share
(test_attention, test_attention_plots, test_attention_html, test_visualization import the fixtures)."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from miniformer_hf import Transformer, visualization

LAYERS, HEADS = 2, 2
CHARACTERS = "abcdefghijklmnopqrstuvwxyz .<>/"


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """One token per character; appends </s> like the project's tokenizers."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({character: index + 4 for index, character in enumerate(CHARACTERS)})
    model = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    model.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=model, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return Transformer(
        vocab_size=len(tokenizer), d_model=16, n_heads=HEADS, n_layers=LAYERS, d_ff=32, dropout=0.1,
        max_position_embeddings=64,
    ).eval()


@pytest.fixture(scope="module")
def padded_batch(tokenizer):
    """Two sources of different lengths (the second padded) and two targets (the second padded)."""
    sources = tokenizer(["hello world", "hi"], padding=True, return_tensors="pt")
    targets = tokenizer(["salut", "yo"], padding=True, add_special_tokens=False, return_tensors="pt")
    start = torch.ones(2, 1, dtype=torch.long)  # decoder_start_token_id = 1
    decoder_input_ids = torch.cat([start, targets["input_ids"]], dim=1)
    decoder_mask = torch.cat([start, targets["attention_mask"]], dim=1)
    return sources, decoder_input_ids, decoder_mask


@pytest.fixture(scope="module")
def weights(model, padded_batch):
    sources, decoder_input_ids, _ = padded_batch
    return model.get_attention_weights(
        sources["input_ids"], decoder_input_ids=decoder_input_ids, attention_mask=sources["attention_mask"]
    )


@pytest.fixture(scope="module")
def example(model, tokenizer):
    return visualization.attention_example(model, tokenizer, "hello world", "salut")


@pytest.fixture(scope="module")
def generated(model, tokenizer):
    return visualization.generate_with_attention(model, tokenizer, "hello world", max_new_tokens=5)


def tick_labels(axis) -> list[str]:
    return [label.get_text() for label in axis.get_ticklabels()]
