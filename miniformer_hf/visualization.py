"""Seeing attention: every view of one example written into a folder, and the public names in one place.

The work is split by job:

    miniformer_hf.attention         AttentionExample, select_example, attention_example,
                                    generate_with_attention, attention_from_generation
    miniformer_hf.attention_plots   plot_attention, plot_attention_grid, plot_generation_alignment
    miniformer_hf.attention_html    head_view / model_view, render_head_view / render_model_view,
                                    save_attention_html, make_self_contained (offline HTML)
    this module                     visualize_example: all of the above for one example into a folder
                                    (``miniformer train`` and ``miniformer visualize``)

matplotlib, bertviz, mpld3 (which ships d3 v5) and xstatic-jquery (which ships jQuery) are the ``viz``
extra; they are imported only when a function needs them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .attention import (
    ATTENTION_KINDS,
    AttentionExample,
    _layers_or_none,
    attention_example,
    attention_from_generation,
    generate_with_attention,
    select_example,
)
from .attention_html import (
    head_view,
    make_self_contained,
    model_view,
    render_head_view,
    render_model_view,
    save_attention_html,
)
from .attention_plots import plot_attention, plot_attention_grid, plot_generation_alignment

logger = logging.getLogger(__name__)


def _save_figure(figure: Any, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    return path


def _write_plots(example: AttentionExample, out_dir: Path, prefix: str) -> dict[str, Path]:
    """One PNG per kind of attention: every layer (rows) and head (columns)."""
    written = {}
    for kind in ATTENTION_KINDS:
        if _layers_or_none(example, kind) is None or (kind != "encoder" and example.target_tokens is None):
            continue
        figure = plot_attention_grid(example, None, kind=kind)
        written[f"{prefix}{kind}_png"] = _save_figure(figure, out_dir / f"{prefix}{kind}.png")
    return written


def visualize_example(
    model: Any,
    tokenizer: Any,
    source_text: str,
    out_dir: str | Path,
    *,
    target_text: str | None = None,
    max_new_tokens: int = 64,
    **generate_kwargs: Any,
) -> dict[str, Path]:
    """Write every attention view of one example into ``out_dir``; return {name: path written}.

    Always: ``generation.html`` (bertviz head and model views over the source and the generated
    tokens), ``generation_alignment.png`` (cross-attention of each generated token over the source) and
    one PNG per kind of attention with every layer and head (``generation_<kind>.png``, kind being
    encoder, decoder or cross). With ``target_text``, the same for the model teacher-forced on that
    target: ``attention.html`` and ``attention_<kind>.png``, unless the model generated exactly that target
    (then they would be the same pictures, and ``generation.html`` says so). The model's train/eval mode is
    restored.
    """
    generated = generate_with_attention(
        model, tokenizer, source_text, max_new_tokens=max_new_tokens, **generate_kwargs
    )
    logger.info("Source %r generated tokens: %s", source_text, " ".join(generated.generated_tokens or []))
    forced = None if target_text is None else attention_example(model, tokenizer, source_text, target_text)
    # A model that generates the target exactly is fed the same decoder inputs as when teacher-forced on it,
    # so the two sets of views would be the same pictures: write them once and say so.
    same = forced is not None and forced.target_tokens == generated.target_tokens
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # only once the model has answered: a failure leaves no folder
    description = (
        "Each decoder row is the decoder input at that step; it produced the next token (the 'Generated' line), "
        "and the PNG plots label each row 'input \u2192 produced'. Cross attention shows where each step looked "
        "in the source."
    )
    if same:
        description += (
            " The model generated the target exactly, so teacher forcing on the target feeds the same decoder "
            "inputs and gives the same attention: these views are also the teacher-forced ones (no attention_*.png "
            "or attention.html is written)."
        )
    written: dict[str, Path] = {
        "generation_html": save_attention_html(
            out_dir / "generation.html", generated, title="Miniformer attention while generating",
            description=description,
        ),
        "alignment_png": _save_figure(plot_generation_alignment(generated), out_dir / "generation_alignment.png"),
    }
    written.update(_write_plots(generated, out_dir, "generation_"))
    if forced is not None and not same:
        written["attention_html"] = save_attention_html(
            out_dir / "attention.html", forced, title="Miniformer attention (teacher-forced on the target)",
            description="Each decoder row is the decoder input at that step: the start token, then the target's "
            "tokens (teacher forcing, as in training).",
        )
        written.update(_write_plots(forced, out_dir, "attention_"))
    return written


__all__ = [
    "ATTENTION_KINDS",
    "AttentionExample",
    "attention_example",
    "attention_from_generation",
    "generate_with_attention",
    "head_view",
    "make_self_contained",
    "model_view",
    "plot_attention",
    "plot_attention_grid",
    "plot_generation_alignment",
    "render_head_view",
    "render_model_view",
    "save_attention_html",
    "select_example",
    "visualize_example",
]
