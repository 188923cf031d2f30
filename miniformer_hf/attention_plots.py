"""Attention heatmaps with matplotlib: one head, every head of a layer (or of all layers), and the
alignment of a generated output.

Rows are queries, columns the keys they attend to, on one colour scale from 0 to 1. Rows of decoder
and cross attention are decoder inputs; for a generated output each row label also names the token
that step produced (``"<s> → 2"``, `attention.row_labels`), so one matrix reads the same in every plot.
Figures are ``matplotlib.figure.Figure`` objects, never ``pyplot``: no GUI backend is selected, and
plotting is safe on a headless machine. matplotlib is the ``viz`` extra, imported on first use.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Sequence

import torch

from .attention import (
    _AXIS_NAMES,
    ATTENTION_KINDS,
    AttentionExample,
    _check_index,
    _check_tokens,
    _display_token,
    _import_optional,
    _layers,
    _tokens_for,
    row_labels,
)

__all__ = ["plot_attention", "plot_attention_grid", "plot_generation_alignment"]


@lru_cache(maxsize=1)
def _figure_class() -> type:
    """A matplotlib Figure that also shows itself as PNG in a notebook without pyplot."""
    figure_module = _import_optional("matplotlib.figure", "Plotting attention")

    class AttentionFigure(figure_module.Figure):
        def _repr_png_(self) -> bytes:
            import io

            buffer = io.BytesIO()
            self.savefig(buffer, format="png")
            return buffer.getvalue()

    return AttentionFigure


def _head_matrix(attention_weights: Any, kind: str, layer: int, head: int | None, batch_index: int) -> torch.Tensor:
    """One head's (query, key) weights, or the mean of the heads when ``head`` is None."""
    layers = _layers(attention_weights, kind)
    _check_index("layer", layer, len(layers), f"the model has {len(layers)} layers of {kind} attention")
    weights = layers[layer]
    batch_size, num_heads = weights.shape[0], weights.shape[1]
    _check_index("batch_index", batch_index, batch_size, f"the weights hold a batch of {batch_size}")
    if head is None:
        return weights[batch_index].detach().float().cpu().mean(dim=0)  # (q, k)
    _check_index("head", head, num_heads, f"each layer has {num_heads} heads")
    return weights[batch_index, head].detach().float().cpu()  # (q, k)


def _axis_tokens(
    attention_weights: Any,
    kind: str,
    source_tokens: Sequence[str] | None,
    target_tokens: Sequence[str] | None,
    matrix: torch.Tensor,
    layer: int,
) -> tuple[list[str] | None, list[str] | None]:
    """Row and column labels. Rows of decoder or cross attention of a generated output also name the
    token each step produced (`attention.row_labels`), unless ``target_tokens`` were given."""
    source = _tokens_for(attention_weights, "source", source_tokens)
    target = _tokens_for(attention_weights, "target", target_tokens)
    _check_tokens(kind, layer, matrix.unsqueeze(0).unsqueeze(0), source, target)
    by_side = {"source": source, "target": target}
    _, query_side, key_side = ATTENTION_KINDS[kind]
    queries = by_side[query_side]
    if query_side == "target" and target_tokens is None:
        queries = row_labels(attention_weights, kind) or queries
    return queries, by_side[key_side]


def _row_axis_name(attention_weights: Any, kind: str, target_tokens: Sequence[str] | None) -> str:
    _, query_side, _ = ATTENTION_KINDS[kind]
    if query_side == "target" and target_tokens is None and isinstance(attention_weights, AttentionExample) and (
        attention_weights.generated_tokens is not None
    ):
        return "decoder input \u2192 token it produced"
    return _AXIS_NAMES[query_side]


def _draw_heatmap(
    ax: Any,
    matrix: torch.Tensor,
    query_tokens: Sequence[str] | None,
    key_tokens: Sequence[str] | None,
    *,
    cmap: str,
    annotate: bool,
    label_queries: bool = True,
    label_keys: bool = True,
) -> Any:
    # One colour scale for every panel: a weight is a probability, so 0 to 1 compares heads fairly.
    image = ax.imshow(matrix.numpy(), vmin=0.0, vmax=1.0, cmap=cmap, aspect="auto", interpolation="nearest")
    if key_tokens is not None:
        labels = [_display_token(t) for t in key_tokens] if label_keys else []
        ax.set_xticks(range(len(key_tokens)) if label_keys else [], labels, rotation=90)
    if query_tokens is not None:
        labels = [_display_token(t) for t in query_tokens] if label_queries else []
        ax.set_yticks(range(len(query_tokens)) if label_queries else [], labels)
    if annotate:
        for query, row in enumerate(matrix.tolist()):
            for key, value in enumerate(row):
                colour = "black" if value > 0.6 else "white"
                ax.text(key, query, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)
    return image


def _figure_size(num_queries: int, num_keys: int, columns: int = 1, rows: int = 1) -> tuple[float, float]:
    cell = 0.32  # inches per token, enough for a short label
    width = min(24.0, columns * max(2.5, cell * num_keys) + 1.8)
    height = min(24.0, rows * max(2.0, cell * num_queries) + 1.5)
    return width, height


def _kind_title(kind: str) -> str:
    return {"encoder": "Encoder self-attention", "decoder": "Decoder self-attention", "cross": "Cross-attention"}[kind]


def plot_attention(
    attention_weights: Any,
    layer: int = 0,
    head: int = 0,
    *,
    kind: str = "encoder",
    batch_index: int = 0,
    source_tokens: Sequence[str] | None = None,
    target_tokens: Sequence[str] | None = None,
    ax: Any = None,
    cmap: str = "viridis",
    annotate: bool | None = None,
    title: str | None = None,
) -> Any:
    """Heatmap of one attention head: rows are queries, columns are the keys they attend to.

    ``attention_weights`` is what ``model.get_attention_weights`` returns (or any output with the same
    fields, or an :class:`AttentionExample`). ``kind`` is ``"encoder"`` (source over source),
    ``"decoder"`` (target over target, zero above the diagonal) or ``"cross"`` (target over source).
    ``source_tokens`` / ``target_tokens`` label the axes; an AttentionExample supplies its own.
    ``head=None`` averages the heads. Draws on ``ax`` when given; returns the matplotlib Figure
    (``fig.savefig("attention.png")``).
    """
    matrix = _head_matrix(attention_weights, kind, layer, head, batch_index)
    query_tokens, key_tokens = _axis_tokens(attention_weights, kind, source_tokens, target_tokens, matrix, layer)
    if ax is None:
        figure = _figure_class()(figsize=_figure_size(*matrix.shape), layout="constrained")
        ax = figure.add_subplot()
    else:
        figure = ax.figure
    if annotate is None:
        annotate = matrix.numel() <= 144
    image = _draw_heatmap(ax, matrix, query_tokens, key_tokens, cmap=cmap, annotate=annotate)
    _, query_side, key_side = ATTENTION_KINDS[kind]
    ax.set_xlabel(f"key: {_AXIS_NAMES[key_side]}")
    ax.set_ylabel(f"query: {_row_axis_name(attention_weights, kind, target_tokens)}")
    head_name = "mean of heads" if head is None else f"head {head}"
    ax.set_title(title if title is not None else f"{_kind_title(kind)}, layer {layer}, {head_name}")
    figure.colorbar(image, ax=ax, label="attention weight")
    return figure


def plot_attention_grid(
    attention_weights: Any,
    layer: int | None = 0,
    *,
    kind: str = "encoder",
    batch_index: int = 0,
    source_tokens: Sequence[str] | None = None,
    target_tokens: Sequence[str] | None = None,
    columns: int | None = None,
    cmap: str = "viridis",
    title: str | None = None,
) -> Any:
    """All heads of one layer side by side (``columns`` per row), on one colour scale from 0 to 1.

    ``layer=None`` draws every layer, one row per layer and one column per head. Arguments otherwise
    as :func:`plot_attention`. Returns the Figure.
    """
    layers = _layers(attention_weights, kind)
    num_heads = layers[0].shape[1]
    if layer is None:
        panels = [(row, head) for row in range(len(layers)) for head in range(num_heads)]
        columns = num_heads
    else:
        _check_index("layer", layer, len(layers), f"the model has {len(layers)} layers of {kind} attention")
        panels = [(layer, head) for head in range(num_heads)]
        columns = min(num_heads, 4) if columns is None else columns
    if not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns={columns!r} must be a positive integer (heads per row).")
    rows = math.ceil(len(panels) / columns)
    first = _head_matrix(attention_weights, kind, panels[0][0], 0, batch_index)
    query_tokens, key_tokens = _axis_tokens(attention_weights, kind, source_tokens, target_tokens, first, panels[0][0])
    figure = _figure_class()(figsize=_figure_size(*first.shape, columns=columns, rows=rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(panels):
            ax.set_axis_off()
            continue
        panel_layer, head = panels[index]
        image = _draw_heatmap(
            ax, _head_matrix(attention_weights, kind, panel_layer, head, batch_index), query_tokens, key_tokens,
            cmap=cmap, annotate=False,
            label_queries=index % columns == 0,
            label_keys=index + columns >= len(panels),  # only under the lowest panel of each column
        )
        ax.set_title(f"head {head}" if layer is not None else f"layer {panel_layer}, head {head}", fontsize=9)
    which = "all layers and heads" if layer is None else f"layer {layer}, all heads"
    figure.suptitle(title if title is not None else f"{_kind_title(kind)}, {which}")
    figure.supylabel(f"query: {_row_axis_name(attention_weights, kind, target_tokens)}", fontsize=9)
    figure.colorbar(image, ax=axes, label="attention weight", shrink=0.8)
    return figure


def plot_generation_alignment(
    example: AttentionExample,
    layer: int | None = None,
    head: int | None = None,
    *,
    cmap: str = "viridis",
    title: str | None = None,
) -> Any:
    """Alignment heatmap of a generated output: which source tokens each generated token attended to.

    Row ``i`` is the cross-attention of the decoder step fed decoder input ``i``, which produced generated
    token ``i``; its label names both (``"<s> → 2"``), as in every other plot of this example. ``layer``
    defaults to the last layer (closest to the output); ``head=None`` averages the heads.
    """
    if not isinstance(example, AttentionExample) or example.generated_tokens is None:
        raise ValueError(
            "plot_generation_alignment needs the AttentionExample of a generated output; get one from "
            "generate_with_attention(model, tokenizer, text) or attention_from_generation(output, ...)."
        )
    layers = _layers(example, "cross")
    layer = len(layers) - 1 if layer is None else layer
    figure = plot_attention(
        example, layer, head, kind="cross", cmap=cmap,
        title=title if title is not None else
        f"Cross-attention while generating, layer {layer}, {'mean of heads' if head is None else f'head {head}'}",
    )
    return figure
