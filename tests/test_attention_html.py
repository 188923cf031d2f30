"""miniformer_hf.attention_html: bertviz views and one HTML file that renders offline."""

from __future__ import annotations

import re
import sys

import pytest

from miniformer_hf import visualization
from miniformer_hf.visualization import AttentionExample
from attention_fixtures import HEADS, LAYERS
from attention_fixtures import example, model, padded_batch, tokenizer, weights  # noqa: F401 (fixtures)


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
