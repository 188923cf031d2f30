"""bertviz views of an attention example, in a notebook or as one HTML file that renders offline.

bertviz loads require.js, d3 and jQuery from a CDN. `save_attention_html` and `make_self_contained`
instead inline d3 v5 (shipped by mpld3) and jQuery (shipped by xstatic-jquery) with a few lines that
stand in for require.js, so the page opens by double-click with no network. bertviz, mpld3 and
xstatic-jquery are the ``viz`` extra, imported on first use.
"""

from __future__ import annotations

import html
import importlib.util
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .attention import VIZ_INSTALL_HINT, AttentionExample, _display_token, _import_optional, attention_example, select_example

logger = logging.getLogger(__name__)

_BERTVIZ_VIEWS = ("head", "model")

__all__ = [
    "head_view",
    "make_self_contained",
    "model_view",
    "render_head_view",
    "render_model_view",
    "save_attention_html",
]


# ---------------------------------------------------------------------------------------------
# bertviz
# ---------------------------------------------------------------------------------------------


def _bertviz_arguments(example: AttentionExample) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if example.encoder_attentions is not None:
        arguments["encoder_attention"] = list(example.encoder_attentions)
        arguments["encoder_tokens"] = example.source_tokens
    if example.target_tokens is not None:
        if example.decoder_attentions is not None:
            arguments["decoder_attention"] = list(example.decoder_attentions)
        if example.cross_attentions is not None:
            arguments["cross_attention"] = list(example.cross_attentions)
            arguments["encoder_tokens"] = example.source_tokens
        arguments["decoder_tokens"] = example.target_tokens
    if not any(key.endswith("_attention") for key in arguments):
        raise ValueError(
            "The example holds no attention bertviz can show; decoder and cross attention also need "
            "target_tokens."
        )
    for side in ("encoder_tokens", "decoder_tokens"):
        if side in arguments and arguments[side] is None:
            raise ValueError(
                f"bertviz needs {side.replace('encoder', 'source').replace('decoder', 'target')} to label "
                "the attention; pass source_tokens/target_tokens or build the example with "
                "attention_example(model, tokenizer, text)."
            )
    return arguments


def _render_bertviz(view: str, example: Any, html_action: str, offline: bool, options: dict[str, Any]) -> Any:
    if view not in _BERTVIZ_VIEWS:
        raise ValueError(f"Unknown bertviz view {view!r}; expected one of {list(_BERTVIZ_VIEWS)}.")
    if html_action not in ("view", "return"):
        raise ValueError(
            f"html_action={html_action!r} is not supported; expected 'view' (display in Jupyter) or "
            "'return' (return an IPython HTML object)."
        )
    example = select_example(example)
    bertviz = _import_optional("bertviz", "The bertviz views")
    render = bertviz.head_view if view == "head" else bertviz.model_view
    if not offline:
        return render(**_bertviz_arguments(example), html_action=html_action, **options)
    # Offline: a self-contained page in an iframe, so nothing is fetched and the notebook's own
    # require.js (if any) is left alone.
    display_module = _import_optional("IPython.display", "Showing bertviz views")
    document = _self_contained_document([_bertviz_fragment(view, example, options)], title=f"bertviz {view} view")
    frame = display_module.HTML(_iframe(document))
    if html_action == "return":
        return frame
    display_module.display(frame)
    return None


def _iframe(document: str) -> str:
    # The iframe grows to its content once loaded; srcdoc frames share the notebook's origin.
    return (
        f'<div class="miniformer-attention"><iframe srcdoc="{html.escape(document, quote=True)}" '
        'style="width:100%;height:640px;border:0" '
        "onload=\"this.style.height=(this.contentWindow.document.body.scrollHeight+24)+'px'\"></iframe></div>"
    )


def render_head_view(
    example: Any, *, html_action: str = "view", offline: bool = False, **bertviz_options: Any
) -> Any:
    """bertviz ``head_view`` of an :class:`AttentionExample` (encoder, decoder and cross attention).

    ``html_action="view"`` displays it in Jupyter, ``"return"`` returns an IPython ``HTML`` object.
    bertviz loads require.js, d3 and jQuery from a CDN; ``offline=True`` instead embeds them in an iframe
    so the view also works without network. Extra options (``layer``, ``heads``...) go to bertviz.
    """
    return _render_bertviz("head", example, html_action, offline, bertviz_options)


def render_model_view(
    example: Any, *, html_action: str = "view", offline: bool = False, **bertviz_options: Any
) -> Any:
    """bertviz ``model_view`` (every layer and head as thumbnails) of an :class:`AttentionExample`.

    Same arguments as :func:`render_head_view`; extra options (``display_mode``...) go to bertviz.
    """
    return _render_bertviz("model", example, html_action, offline, bertviz_options)


def head_view(
    model: Any,
    tokenizer: Any,
    source_text: str,
    target_text: str | None = None,
    *,
    html_action: str = "view",
    offline: bool = False,
    max_new_tokens: int = 64,
    **bertviz_options: Any,
) -> Any:
    """bertviz head view of ``model`` on a source text, teacher-forced on ``target_text`` if given,
    otherwise on the target the model generates. See :func:`render_head_view` for the options."""
    example = attention_example(model, tokenizer, source_text, target_text, max_new_tokens=max_new_tokens)
    return render_head_view(example, html_action=html_action, offline=offline, **bertviz_options)


def model_view(
    model: Any,
    tokenizer: Any,
    source_text: str,
    target_text: str | None = None,
    *,
    html_action: str = "view",
    offline: bool = False,
    max_new_tokens: int = 64,
    **bertviz_options: Any,
) -> Any:
    """bertviz model view of ``model`` on a source text; arguments as :func:`head_view`."""
    example = attention_example(model, tokenizer, source_text, target_text, max_new_tokens=max_new_tokens)
    return render_model_view(example, html_action=html_action, offline=offline, **bertviz_options)


# ---------------------------------------------------------------------------------------------
# Self-contained HTML
# ---------------------------------------------------------------------------------------------

# bertviz's scripts start with require.config({paths: <CDN URLs>}) and then call
# requirejs(["jquery", "d3"], callback). This stand-in for require.js (our own, a few lines) ignores the
# paths and hands the callback the libraries that the page has already inlined as globals.
_OFFLINE_LOADER_JS = """
(function () {
  "use strict";
  var modules = {jquery: window.jQuery, d3: window.d3};
  function requirejs(names, callback) {
    var resolved = names.map(function (name) {
      if (!(name in modules) || modules[name] === undefined) {
        throw new Error("Miniformer offline loader: module '" + name + "' is not embedded in this page; " +
                        "embedded modules: " + Object.keys(modules).join(", "));
      }
      return modules[name];
    });
    callback.apply(window, resolved);
  }
  requirejs.config = function () {};
  window.requirejs = requirejs;
  window.require = requirejs;
})();
"""

_PAGE_STYLE = """
body { font-family: 'Helvetica Neue', Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
p.note { color: #555; max-width: 60em; }
"""


def _package_file(package: str, relative_path: str, purpose: str) -> Path:
    spec = importlib.util.find_spec(package) if _parent_importable(package) else None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"{purpose} needs the package '{package}', which is not installed. "
            f"Install the visualization extra with: {VIZ_INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative_path
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"The installed package '{package}' has no {relative_path}; expected it to ship that file. "
        f"Reinstall the visualization extra with: {VIZ_INSTALL_HINT}"
    )


def _parent_importable(package: str) -> bool:
    try:
        return importlib.util.find_spec(package.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


@lru_cache(maxsize=1)
def _embedded_libraries() -> tuple[tuple[str, str], ...]:
    """(name, source) of the JavaScript libraries bertviz needs, read from installed Python packages."""
    d3 = _package_file("mpld3", "js/d3.v5.min.js", "Offline HTML (d3 v5)")
    jquery = _package_file("xstatic.pkg.jquery", "data/jquery.min.js", "Offline HTML (jQuery)")
    return (
        ("d3 v5, shipped by the mpld3 package", d3.read_text(encoding="utf-8")),
        ("jQuery, shipped by the xstatic-jquery package", jquery.read_text(encoding="utf-8")),
    )


def _script(source: str) -> str:
    """An inline <script>; '</script' or '<!--' inside the code (say, in a token) must not end it early."""
    source = re.sub(r"</(script)", r"<\\/\1", source, flags=re.IGNORECASE)
    source = source.replace("<!--", "<\\!--")
    return f"<script>\n{source}\n</script>"


_EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=[^>]*>\s*</script>", re.IGNORECASE)
_INLINE_SCRIPT_START = re.compile(r"<script\b[^>]*>", re.IGNORECASE)


def _split_bertviz_html(bertviz_html: str) -> tuple[str, str]:
    """Split bertviz's returned HTML into its markup and its inline script, dropping CDN script tags.

    The script is cut between the first inline <script> tag and the *last* </script>, because the
    attention data inside it may itself contain '</script>' (a token) that bertviz does not escape.
    """
    without_cdn = _EXTERNAL_SCRIPT.sub("", bertviz_html)
    start = _INLINE_SCRIPT_START.search(without_cdn)
    end = without_cdn.lower().rfind("</script>")
    if start is None or end < start.end():
        raise ValueError(
            "Could not find the inline <script> in bertviz's HTML; expected what bertviz.head_view(..., "
            "html_action='return').data returns. The installed bertviz may have changed its output "
            f"format; Miniformer was written against bertviz 1.4. ({VIZ_INSTALL_HINT})"
        )
    markup = without_cdn[: start.start()] + without_cdn[end + len("</script>") :]
    return markup, without_cdn[start.end() : end]


def make_self_contained(bertviz_html: str | Sequence[str], *, title: str = "Attention") -> str:
    """Turn bertviz's exported HTML (one view or several) into one page that renders with no network.

    The CDN ``<script src=...>`` tags are removed; d3 v5 and jQuery are read from installed Python
    packages (mpld3, xstatic-jquery) and inlined, followed by a small loader that answers bertviz's
    ``requirejs`` call. Accepts strings or IPython ``HTML`` objects (their ``.data``).
    """
    documents = [bertviz_html] if isinstance(bertviz_html, str) or hasattr(bertviz_html, "data") else list(bertviz_html)
    fragments = [_split_bertviz_html(getattr(document, "data", document)) for document in documents]
    return _self_contained_document([markup + _script(code) for markup, code in fragments], title=title)


def _self_contained_document(fragments: Sequence[str], *, title: str, intro: str = "") -> str:
    libraries = "\n".join(f"<!-- {name} -->\n{_script(source)}" for name, source in _embedded_libraries())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_PAGE_STYLE}</style>\n"
        f"{libraries}\n<!-- Miniformer's stand-in for require.js -->\n{_script(_OFFLINE_LOADER_JS)}\n"
        f"</head>\n<body>\n{intro}\n" + "\n".join(fragments) + "\n</body>\n</html>\n"
    )


def _bertviz_fragment(view: str, example: AttentionExample, options: Mapping[str, Any]) -> str:
    bertviz = _import_optional("bertviz", "The bertviz views")
    render = bertviz.head_view if view == "head" else bertviz.model_view
    returned = render(**_bertviz_arguments(example), html_action="return", **options)
    markup, code = _split_bertviz_html(returned.data)
    return markup + _script(code)


def save_attention_html(
    path: str | Path,
    attention_weights: Any,
    *,
    source_tokens: Sequence[str] | None = None,
    target_tokens: Sequence[str] | None = None,
    batch_index: int = 0,
    source_mask: torch.Tensor | Sequence[int] | None = None,
    target_mask: torch.Tensor | Sequence[int] | None = None,
    views: Sequence[str] = _BERTVIZ_VIEWS,
    title: str = "Miniformer attention",
    description: str | None = None,
) -> Path:
    """Write one HTML file with bertviz views that opens by double-click, with no network at all.

    ``attention_weights`` is an :class:`AttentionExample`, or batched weights (``get_attention_weights``
    output) from which example ``batch_index`` is taken, with its tokens and optional padding masks as in
    :func:`select_example`. ``views`` chooses bertviz's ``"head"`` and/or ``"model"`` view; each lets the
    reader switch between encoder, decoder and cross attention. Returns the path written.
    """
    unknown = [view for view in views if view not in _BERTVIZ_VIEWS]
    if unknown or not views:
        raise ValueError(f"views={list(views)!r} is not valid; expected a non-empty subset of {list(_BERTVIZ_VIEWS)}.")
    example = select_example(
        attention_weights, batch_index, source_tokens=source_tokens, target_tokens=target_tokens,
        source_mask=source_mask, target_mask=target_mask,
    )
    intro = f"<h1>{html.escape(title)}</h1>\n"
    for label, tokens in (
        ("Source", example.source_tokens), ("Decoder input", example.target_tokens), ("Generated", example.generated_tokens),
    ):
        if tokens is not None:
            shown = " ".join(_display_token(token) for token in tokens)
            intro += f'<p class="note">{label}: {html.escape(shown)}</p>\n'
    if description:
        intro += f'<p class="note">{html.escape(description)}</p>\n'
    headings = {
        "head": "Head view: pick a layer and the kind of attention; hover a token to see where it attends.",
        "model": "Model view: every layer (rows) and head (columns); click a thumbnail to enlarge it.",
    }
    fragments = []
    for view in views:
        options = {"display_mode": "light"} if view == "model" else {}
        fragments.append(f"<h2>{headings[view]}</h2>\n" + _bertviz_fragment(view, example, options))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_self_contained_document(fragments, title=title, intro=intro), encoding="utf-8")
    logger.debug("Wrote self-contained attention HTML to %s", path)
    return path
