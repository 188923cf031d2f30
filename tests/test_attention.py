"""miniformer_hf.attention: the weights a model returns, checked, trimmed and labelled, from a forward
pass or from generation (the plots: test_attention_plots; bertviz and HTML: test_attention_html)."""

from __future__ import annotations

import pytest
import torch

from miniformer_hf import visualization
from miniformer_hf.visualization import AttentionExample
from attention_fixtures import HEADS, LAYERS
from attention_fixtures import example, model, padded_batch, tokenizer, weights  # noqa: F401 (fixtures)


# --- The weights that get drawn ------------------------------------------------------------------


def test_shapes_per_layer_for_all_three_kinds(weights, padded_batch):
    sources, decoder_input_ids, _ = padded_batch
    batch, source_length = sources["input_ids"].shape
    target_length = decoder_input_ids.shape[1]
    expected = {
        "encoder_attentions": (batch, HEADS, source_length, source_length),
        "decoder_attentions": (batch, HEADS, target_length, target_length),
        "cross_attentions": (batch, HEADS, target_length, source_length),
    }
    for field, shape in expected.items():
        layers = getattr(weights, field)
        assert len(layers) == LAYERS
        assert all(tuple(layer.shape) == shape for layer in layers), field


def test_attention_rows_sum_to_one(weights):
    for field in ("encoder_attentions", "decoder_attentions", "cross_attentions"):
        for layer in getattr(weights, field):
            torch.testing.assert_close(layer.sum(dim=-1), torch.ones(layer.shape[:-1]), msg=field)


def test_decoder_self_attention_is_exactly_zero_above_the_diagonal(weights):
    for layer in weights.decoder_attentions:
        above_diagonal = torch.ones(layer.shape[-2:], dtype=torch.bool).triu(diagonal=1)
        assert torch.all(layer[..., above_diagonal] == 0)


def test_padding_columns_get_zero_weight(weights, padded_batch):
    sources, _, _ = padded_batch
    padding = sources["attention_mask"] == 0  # (B, S)
    assert padding.any(), "the fixture must contain padding"
    for field in ("encoder_attentions", "cross_attentions"):
        for layer in getattr(weights, field):
            keys_padding = padding[:, None, None, :].expand_as(layer)
            assert torch.all(layer[keys_padding] == 0), field


# --- Picking one example ---------------------------------------------------------------------


def test_select_example_picks_one_example_and_drops_its_padding(weights, padded_batch, tokenizer):
    sources, decoder_input_ids, decoder_mask = padded_batch
    chosen = visualization.select_example(
        weights, 1,
        source_tokens=tokenizer.convert_ids_to_tokens(sources["input_ids"][1]),
        target_tokens=tokenizer.convert_ids_to_tokens(decoder_input_ids[1]),
        source_mask=sources["attention_mask"][1], target_mask=decoder_mask[1],
    )
    assert chosen.source_tokens == ["h", "i", "</s>"]
    assert chosen.target_tokens == ["<s>", "y", "o"]
    assert tuple(chosen.encoder_attentions[0].shape) == (1, HEADS, 3, 3)
    assert tuple(chosen.decoder_attentions[0].shape) == (1, HEADS, 3, 3)
    assert tuple(chosen.cross_attentions[0].shape) == (1, HEADS, 3, 3)
    torch.testing.assert_close(chosen.cross_attentions[1][0], weights.cross_attentions[1][1, :, :3, :3])


def test_attention_example_is_teacher_forced_on_the_target(example):
    assert example.source_tokens == list("hello world") + ["</s>"]
    assert example.target_tokens == ["<s>", *"salut"]
    assert tuple(example.cross_attentions[0].shape) == (1, HEADS, 6, 12)


def test_helpers_restore_training_mode(model, tokenizer):
    model.train()
    try:
        visualization.attention_example(model, tokenizer, "abc", "de")
        visualization.generate_with_attention(model, tokenizer, "abc", max_new_tokens=2)
        assert model.training
    finally:
        model.eval()


def test_mismatched_tokens_are_refused_when_building_an_example(example):
    with pytest.raises(ValueError, match=r"3 target_tokens were given but decoder attention .* expected exactly 6"):
        AttentionExample(
            source_tokens=example.source_tokens, target_tokens=["<s>", "a", "b"],
            encoder_attentions=example.encoder_attentions, decoder_attentions=example.decoder_attentions,
            cross_attentions=example.cross_attentions,
        )


def test_weights_of_the_wrong_rank_are_refused(example):
    squeezed = {"encoder_attentions": tuple(layer[0] for layer in example.encoder_attentions)}
    with pytest.raises(ValueError, match=r"encoder_attentions\[0\] has shape \(2, 12, 12\); expected a 4-d tensor"):
        visualization.plot_attention(squeezed)


# --- Attention during generation ---------------------------------------------------------------


@pytest.mark.parametrize("generate_kwargs", [{}, {"num_beams": 3, "num_return_sequences": 2}, {"use_cache": False}])
def test_generation_attention_equals_a_teacher_forced_pass_over_the_output(model, tokenizer, generate_kwargs):
    sources = tokenizer(["hello world", "hi"], padding=True, return_tensors="pt")
    output = model.generate(
        **sources, max_new_tokens=4, output_attentions=True, return_dict_in_generate=True, **generate_kwargs
    )
    per_source = output.sequences.shape[0] // 2
    for index in range(output.sequences.shape[0]):
        stitched = visualization.attention_from_generation(
            output, tokenizer, input_ids=sources["input_ids"], attention_mask=sources["attention_mask"], index=index
        )
        source_row = index // per_source
        real = int(sources["attention_mask"][source_row].sum())
        decoder_ids = output.sequences[index, : len(stitched.target_tokens)]
        assert stitched.generated_tokens == tokenizer.convert_ids_to_tokens(output.sequences[index, 1 : len(decoder_ids) + 1])
        recomputed = model.get_attention_weights(
            sources["input_ids"][source_row : source_row + 1, :real], decoder_input_ids=decoder_ids[None]
        )
        for field in ("encoder_attentions", "decoder_attentions", "cross_attentions"):
            for ours, reference in zip(getattr(stitched, field), getattr(recomputed, field)):
                torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4, msg=f"{field}, sequence {index}")


def test_attention_from_generation_needs_attentions(model, tokenizer):
    sources = tokenizer(["abc"], return_tensors="pt")
    output = model.generate(**sources, max_new_tokens=2, return_dict_in_generate=True)
    with pytest.raises(ValueError, match="output_attentions=True, return_dict_in_generate=True"):
        visualization.attention_from_generation(output, tokenizer, input_ids=sources["input_ids"])
