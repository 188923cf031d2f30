"""miniformer_hf.visualization: the weights it draws, the plots, bertviz, offline HTML, generation, CLI."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from miniformer_hf import Transformer, visualization
from miniformer_hf.visualization import AttentionExample

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


def _tick_labels(axis) -> list[str]:
    return [label.get_text() for label in axis.get_ticklabels()]


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
    assert _tick_labels(heatmap_axes.xaxis) == [visible.get(t, t) for t in x_tokens]
    assert _tick_labels(heatmap_axes.yaxis) == [visible.get(t, t) for t in y_tokens]
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


def test_generation_alignment_has_one_row_per_generated_token(generated, tmp_path):
    assert generated.target_tokens[0] == "<s>"
    assert generated.generated_tokens[:-1] == generated.target_tokens[1:]
    figure = visualization.plot_generation_alignment(generated)
    axes = figure.axes[0]
    # issue 21.3: each row names its decoder input and the token that step produced, in every plot of the example.
    expected = [f"{given} \u2192 {produced}" for given, produced in zip(generated.target_tokens, generated.generated_tokens)]
    assert _tick_labels(axes.yaxis) == expected
    assert axes.get_ylabel() == "query: decoder input \u2192 token it produced"
    cross = visualization.plot_attention(generated, 0, 0, kind="cross").axes[0]
    assert _tick_labels(cross.yaxis) == expected and cross.get_ylabel() == axes.get_ylabel()
    assert axes.images[0].get_array().shape == (len(generated.generated_tokens), len(generated.source_tokens))
    figure.savefig(tmp_path / "alignment.png")


def test_attention_from_generation_needs_attentions(model, tokenizer):
    sources = tokenizer(["abc"], return_tensors="pt")
    output = model.generate(**sources, max_new_tokens=2, return_dict_in_generate=True)
    with pytest.raises(ValueError, match="output_attentions=True, return_dict_in_generate=True"):
        visualization.attention_from_generation(output, tokenizer, input_ids=sources["input_ids"])


# --- bertviz and offline HTML --------------------------------------------------------------------


def _script_bodies(page: str) -> list[str]:
    """The text of each <script> element, split the way a browser's HTML parser splits it."""
    from html.parser import HTMLParser

    class Scripts(HTMLParser):
        def __init__(self):
            super().__init__()
            self.bodies, self.inside = [], False

        def handle_starttag(self, tag, attributes):
            if tag == "script":
                self.inside = True
                self.bodies.append("")

        def handle_endtag(self, tag):
            self.inside = self.inside and tag != "script"

        def handle_data(self, data):
            if self.inside:
                self.bodies[-1] += data

    parser = Scripts()
    parser.feed(page)
    return parser.bodies


def _bertviz_parameters(html_text: str) -> dict:
    import json

    return json.loads(re.search(r"const params = (\{.*?\}); // HACK", html_text, re.DOTALL).group(1))


@pytest.mark.parametrize("view", [visualization.head_view, visualization.model_view])
def test_bertviz_views_from_model_tokenizer_and_text(model, tokenizer, view):
    returned = view(model, tokenizer, "hello world", "salut", html_action="return")
    parameters = _bertviz_parameters(returned.data)
    names = [entry["name"] for entry in parameters["attention"]]
    assert names == ["Encoder", "Decoder", "Cross"]
    cross = parameters["attention"][2]
    assert cross["left_text"] == ["<s>", *"salut"]
    assert cross["right_text"] == list("hello world") + ["</s>"]
    assert len(cross["attn"]) == LAYERS and len(cross["attn"][0]) == HEADS


def test_bertviz_view_of_a_generated_output(model, tokenizer):
    returned = visualization.head_view(model, tokenizer, "hello world", html_action="return", max_new_tokens=3)
    decoder = _bertviz_parameters(returned.data)["attention"][1]
    assert decoder["left_text"][0] == "<s>"
    assert len(decoder["left_text"]) <= 3


def test_bertviz_view_of_one_example_picked_from_a_batch(weights, padded_batch, tokenizer):
    sources, decoder_input_ids, decoder_mask = padded_batch
    chosen = visualization.select_example(
        weights, 1, source_tokens=tokenizer.convert_ids_to_tokens(sources["input_ids"][1]),
        target_tokens=tokenizer.convert_ids_to_tokens(decoder_input_ids[1]),
        source_mask=sources["attention_mask"][1], target_mask=decoder_mask[1],
    )
    encoder = _bertviz_parameters(visualization.render_model_view(chosen, html_action="return").data)["attention"][0]
    assert encoder["left_text"] == ["h", "i", "</s>"]


def test_offline_notebook_view_embeds_everything(example):
    frame = visualization.render_head_view(example, html_action="return", offline=True).data
    assert '<iframe srcdoc="' in frame
    assert "require.min.js" not in frame and "&lt;script src" not in frame
    assert "https://d3js.org v5" in frame


def test_saved_html_is_self_contained(example, tmp_path):
    path = visualization.save_attention_html(tmp_path / "attention.html", example, title="Cat <b>")
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert "require.min.js" not in page  # bertviz's script still names its CDN paths, which the loader ignores
    assert "https://d3js.org v5" in page  # d3 v5 from mpld3, inlined
    assert "jQuery v3" in page  # jQuery from xstatic-jquery, inlined
    scripts = _script_bodies(page)
    assert len(scripts) == 3 + 2  # d3, jQuery, the loader; then one script per view
    assert all("requirejs(['jquery', 'd3']" in script for script in scripts[3:])
    assert "<title>Cat &lt;b&gt;</title>" in page
    assert len(re.findall(r'<div id="bertviz-[0-9a-f]+"', page)) == 2  # head view and model view


def test_a_token_that_looks_like_a_closing_script_tag_cannot_break_the_page(example, tmp_path):
    hostile = AttentionExample(
        source_tokens=["</script>"] + example.source_tokens[1:], target_tokens=None,
        encoder_attentions=example.encoder_attentions, decoder_attentions=None, cross_attentions=None,
    )
    page = visualization.save_attention_html(tmp_path / "hostile.html", hostile, views=["head"]).read_text()
    scripts = _script_bodies(page)
    assert len(scripts) == 3 + 1  # the token did not end the view's script early
    assert _bertviz_parameters(scripts[-1])["attention"][0]["left_text"][0] == "</script>"


def test_make_self_contained_converts_bertviz_export(example):
    import bertviz

    exported = bertviz.head_view(
        encoder_attention=list(example.encoder_attentions), encoder_tokens=example.source_tokens,
        html_action="return",
    )
    page = visualization.make_self_contained(exported, title="t")
    assert "cdnjs.cloudflare.com/ajax/libs/require.js" not in page
    assert "requirejs(['jquery', 'd3']" in page  # bertviz's own script, unmodified, runs on our loader


def test_missing_optional_packages_say_how_to_install(example, monkeypatch):
    monkeypatch.setitem(sys.modules, "bertviz", None)
    with pytest.raises(ImportError, match=re.escape('pip install "miniformer-hf[viz]"')):
        visualization.render_head_view(example, html_action="return")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "mpld3", None)
    from miniformer_hf import attention_html, attention_plots

    cached = (attention_plots._figure_class, attention_html._embedded_libraries)
    for function in cached:
        function.cache_clear()
    try:
        with pytest.raises(ImportError, match=re.escape('pip install "miniformer-hf[viz]"')):
            visualization.plot_attention(example)
        with pytest.raises(ImportError, match=r"'mpld3'.*pip install"):
            visualization.make_self_contained('<div id="v"></div><script type="text/javascript">draw()</script>')
    finally:
        for function in cached:
            function.cache_clear()


def test_importing_the_module_loads_no_plotting_library():
    code = (
        "import sys, miniformer_hf.visualization; "
        "loaded = [m for m in ('matplotlib', 'bertviz', 'mpld3', 'IPython') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- One example into a folder, and the command line ----------------------------------------------


def test_visualize_example_writes_html_and_png(model, tokenizer, tmp_path):
    written = visualization.visualize_example(
        model, tokenizer, "hello world", tmp_path / "out", target_text="salut", max_new_tokens=3
    )
    assert {"generation_html", "alignment_png", "attention_html"} <= set(written)
    assert {"attention_encoder_png", "attention_decoder_png", "attention_cross_png"} <= set(written)
    assert {"generation_encoder_png", "generation_decoder_png", "generation_cross_png"} <= set(written)
    for name, path in written.items():
        assert path.is_file() and path.parent == tmp_path / "out", name
        if path.suffix == ".png":
            assert path.read_bytes()[:4] == b"\x89PNG", name


def test_miniformer_visualize_command(model, tokenizer, tmp_path, caplog):
    run_dir = tmp_path / "run"
    model.save_pretrained(run_dir)
    tokenizer.save_pretrained(run_dir)
    from miniformer_hf.commands import visualize as visualize_command
    from miniformer_hf.errors import MiniformerError

    parser = argparse.ArgumentParser(prog="miniformer visualize")
    visualize_command.add_arguments(parser)
    arguments = parser.parse_args(
        ["--model", str(run_dir), "hello", "--out", str(tmp_path / "views"), "--max-new-tokens", "2"]
    )
    with caplog.at_level("INFO", logger="miniformer_hf.commands.visualize"):
        assert visualize_command.run(arguments) == 0
    assert (tmp_path / "views" / "generation.html").is_file()
    assert (tmp_path / "views" / "generation_alignment.png").is_file()
    assert not (tmp_path / "views" / "attention.html").exists()  # no --target given
    assert "generation.html" in caplog.text

    missing = parser.parse_args(["--model", str(tmp_path / "nope"), "x", "--out", str(tmp_path / "v")])
    with pytest.raises(MiniformerError, match="no such folder"):  # raised like every command, exit code 1
        visualize_command.run(missing)
    assert not (tmp_path / "v").exists()


def test_teacher_forced_views_equal_to_the_generated_ones_are_written_once(model, tokenizer, tmp_path, monkeypatch):
    # issue 21.9: when the model generates the target exactly, teacher forcing feeds the same decoder inputs.
    generated = visualization.generate_with_attention(model, tokenizer, "hello world", max_new_tokens=3)
    monkeypatch.setattr(visualization, "attention_example", lambda *args, **kwargs: generated)
    written = visualization.visualize_example(
        model, tokenizer, "hello world", tmp_path / "out", target_text="anything", max_new_tokens=3
    )
    assert not any(name.startswith("attention_") for name in written)
    assert not list((tmp_path / "out").glob("attention*"))
    assert "generated the target exactly" in (tmp_path / "out" / "generation.html").read_text(encoding="utf-8")


def test_a_failed_generation_leaves_no_output_folder(model, tokenizer, tmp_path):
    with pytest.raises(Exception):
        visualization.visualize_example(model, tokenizer, "hello", tmp_path / "out", max_new_tokens=3, num_beams=0)
    assert not (tmp_path / "out").exists()
