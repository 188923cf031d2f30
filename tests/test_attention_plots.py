"""miniformer_hf.attention_plots: matplotlib heatmaps of one head, a grid of heads, the alignment of a
generated output, and their errors for bad input."""

from __future__ import annotations

import pytest
import torch

from miniformer_hf import visualization
from attention_fixtures import HEADS, LAYERS, tick_labels
from attention_fixtures import example, generated, model, padded_batch, tokenizer, weights  # noqa: F401 (fixtures)


# --- Plots -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, y_tokens, x_tokens",
    [
        ("encoder", list("hello world") + ["</s>"], list("hello world") + ["</s>"]),
        ("decoder", ["<s>", *"salut"], ["<s>", *"salut"]),
        ("cross", ["<s>", *"salut"], list("hello world") + ["</s>"]),
    ],
)
def test_plot_attention_draws_one_head_with_tokens_on_both_axes(example, kind, y_tokens, x_tokens, tmp_path):
    figure = visualization.plot_attention(example, layer=1, head=1, kind=kind)
    heatmap_axes = figure.axes[0]
    visible = {" ": "\u2423"}
    assert tick_labels(heatmap_axes.xaxis) == [visible.get(t, t) for t in x_tokens]
    assert tick_labels(heatmap_axes.yaxis) == [visible.get(t, t) for t in y_tokens]
    drawn = heatmap_axes.images[0].get_array()
    expected = getattr(example, visualization.ATTENTION_KINDS[kind][0])[1][0, 1]
    torch.testing.assert_close(torch.as_tensor(drawn.data), expected)
    path = tmp_path / f"{kind}.png"
    figure.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_attention_takes_batched_weights_and_tokens(weights, tokenizer, padded_batch):
    sources, decoder_input_ids, _ = padded_batch
    figure = visualization.plot_attention(
        weights, 0, 0, kind="cross", batch_index=1,
        source_tokens=tokenizer.convert_ids_to_tokens(sources["input_ids"][1]),
        target_tokens=tokenizer.convert_ids_to_tokens(decoder_input_ids[1]),
    )
    torch.testing.assert_close(
        torch.as_tensor(figure.axes[0].images[0].get_array().data), weights.cross_attentions[0][1, 0]
    )


def test_plot_attention_grid_shows_every_head_of_a_layer(example):
    figure = visualization.plot_attention_grid(example, layer=1, kind="decoder")
    heatmaps = [axes for axes in figure.axes if axes.images]
    assert [axes.get_title() for axes in heatmaps] == [f"head {head}" for head in range(HEADS)]
    for head, axes in enumerate(heatmaps):
        torch.testing.assert_close(torch.as_tensor(axes.images[0].get_array().data), example.decoder_attentions[1][0, head])


def test_plot_attention_grid_of_every_layer_has_a_row_per_layer(example):
    figure = visualization.plot_attention_grid(example, None, kind="cross")
    heatmaps = [axes for axes in figure.axes if axes.images]
    assert [axes.get_title() for axes in heatmaps] == [
        f"layer {layer}, head {head}" for layer in range(LAYERS) for head in range(HEADS)
    ]
    torch.testing.assert_close(torch.as_tensor(heatmaps[-1].images[0].get_array().data), example.cross_attentions[-1][0, -1])


def test_plot_attention_averages_heads_when_head_is_none(example):
    figure = visualization.plot_attention(example, 0, None, kind="encoder")
    torch.testing.assert_close(
        torch.as_tensor(figure.axes[0].images[0].get_array().data), example.encoder_attentions[0][0].mean(dim=0)
    )


# --- Bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(layer=LAYERS), rf"layer={LAYERS} is out of range: valid values are 0 to {LAYERS - 1}"),
        (dict(layer=-1), rf"layer=-1 is out of range: valid values are 0 to {LAYERS - 1}"),
        (dict(head=HEADS + 3), rf"head={HEADS + 3} is out of range: valid values are 0 to {HEADS - 1}"),
        (dict(kind="self"), r"Unknown attention kind 'self'. Expected one of \['cross', 'decoder', 'encoder'\]"),
        (dict(batch_index=1), r"batch_index=1 is out of range: valid values are 0 to 0"),
        (dict(source_tokens=["a", "b"]), r"2 source_tokens were given but encoder attention \(layer 0\) has 12 query positions; expected exactly 12"),
        (dict(kind="cross", target_tokens=["x"]), r"1 target_tokens were given but cross attention \(layer 0\) has 6 query positions; expected exactly 6"),
    ],
)
def test_bad_input_names_the_value_and_the_valid_range(example, arguments, message):
    with pytest.raises(ValueError, match=message):
        visualization.plot_attention(example, **arguments)


def test_bad_input_in_the_grid_and_in_html_export(example, tmp_path):
    with pytest.raises(ValueError, match=r"layer=5 is out of range: valid values are 0 to 1"):
        visualization.plot_attention_grid(example, layer=5, kind="cross")
    with pytest.raises(ValueError, match=r"Unknown attention kind 'crossed'"):
        visualization.plot_attention_grid(example, kind="crossed")
    with pytest.raises(ValueError, match=r"views=\['heads'\] is not valid"):
        visualization.save_attention_html(tmp_path / "x.html", example, views=["heads"])


def test_generation_alignment_has_one_row_per_generated_token(generated, tmp_path):
    assert generated.target_tokens[0] == "<s>"
    assert generated.generated_tokens[:-1] == generated.target_tokens[1:]
    figure = visualization.plot_generation_alignment(generated)
    axes = figure.axes[0]
    # issue 21.3: each row names its decoder input and the token that step produced, in every plot of the example.
    expected = [f"{given} \u2192 {produced}" for given, produced in zip(generated.target_tokens, generated.generated_tokens)]
    assert tick_labels(axes.yaxis) == expected
    assert axes.get_ylabel() == "query: decoder input \u2192 token it produced"
    cross = visualization.plot_attention(generated, 0, 0, kind="cross").axes[0]
    assert tick_labels(cross.yaxis) == expected and cross.get_ylabel() == axes.get_ylabel()
    assert axes.images[0].get_array().shape == (len(generated.generated_tokens), len(generated.source_tokens))
    figure.savefig(tmp_path / "alignment.png")
