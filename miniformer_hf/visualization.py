"""Seeing attention: heatmaps, bertviz views, offline HTML, and attention during generation.

Everything here reads the attention weights the model already returns (``model.get_attention_weights``,
``output_attentions=True``, or ``generate(..., output_attentions=True, return_dict_in_generate=True)``):
tuples over layers of ``(B, H, query, key)`` float tensors for three kinds of attention.

    kind       field                  query            key
    encoder    encoder_attentions     source (S)       source (S)
    decoder    decoder_attentions     target (T)       target (T)      zero above the diagonal
    cross      cross_attentions       target (T)       source (S)

Contents
    AttentionExample                     one example's weights (batch of 1) and its tokens
    select_example                       pick one example from a batch and drop its padding
    attention_example                    run the model on a source (and optional target) text
    attention_from_generation            stitch ``generate()`` step attentions into one example
    generate_with_attention              generate from a source text and keep the attention
    plot_attention / plot_attention_grid one head / all heads of a layer (or of every layer), as figures
    plot_generation_alignment            cross-attention of each generated token over the source
    head_view / model_view               bertviz views from a model, a tokenizer and text
    render_head_view / render_model_view bertviz views of an AttentionExample
    save_attention_html                  one HTML file that renders offline (no CDN)
    make_self_contained                  the same for HTML that bertviz itself exported
    visualize_example                    all of the above into a folder (used by ``miniformer train``)
    add_visualize_arguments / run_visualize    ``miniformer visualize``

matplotlib, bertviz, mpld3 (which ships d3 v5) and xstatic-jquery (which ships jQuery) are the ``viz``
extra; they are imported only when a function needs them. Figures are built with
``matplotlib.figure.Figure`` rather than ``pyplot``, so no GUI backend is ever selected and plotting is
safe on a headless machine.
"""

from __future__ import annotations

import argparse
import html
import importlib
import importlib.util
import logging
import math
import numbers
import re
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

logger = logging.getLogger(__name__)

VIZ_INSTALL_HINT = 'pip install "miniformer-hf[viz]"'

# kind -> (field on the weights object, which tokens label the query axis, which label the key axis)
ATTENTION_KINDS: dict[str, tuple[str, str, str]] = {
    "encoder": ("encoder_attentions", "source", "source"),
    "decoder": ("decoder_attentions", "target", "target"),
    "cross": ("cross_attentions", "target", "source"),
}
_AXIS_NAMES = {"source": "source token (encoder)", "target": "target token (decoder)"}
_BERTVIZ_VIEWS = ("head", "model")


# ---------------------------------------------------------------------------------------------
# Optional dependencies
# ---------------------------------------------------------------------------------------------


def _import_optional(module_name: str, purpose: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs the optional package '{module_name.split('.')[0]}', which is not installed. "
            f"Install the visualization extra with: {VIZ_INSTALL_HINT}"
        ) from error


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


# ---------------------------------------------------------------------------------------------
# One example's attention
# ---------------------------------------------------------------------------------------------


@dataclass
class AttentionExample:
    """The attention of one example, ready to draw.

    Each ``*_attentions`` field is a tuple over layers of ``(1, H, query, key)`` tensors (batch of one,
    padding removed), or ``None`` when that kind was not computed. ``source_tokens`` label the encoder
    positions, ``target_tokens`` the decoder input positions (they start with the decoder start token).
    For a generated output, ``generated_tokens[i]`` is the token that decoder position ``i`` produced:
    ``target_tokens`` shifted left by one, ending with the last generated token.
    """

    source_tokens: list[str]
    target_tokens: list[str] | None
    encoder_attentions: tuple[torch.Tensor, ...] | None
    decoder_attentions: tuple[torch.Tensor, ...] | None
    cross_attentions: tuple[torch.Tensor, ...] | None
    generated_tokens: list[str] | None = None

    def __post_init__(self) -> None:
        for kind in ATTENTION_KINDS:
            layers = _layers_or_none(self, kind)
            if layers is None:
                continue
            for layer_index, weights in enumerate(layers):
                _check_tokens(kind, layer_index, weights, self.source_tokens, self.target_tokens)


def _field(container: Any, name: str) -> Any:
    if isinstance(container, Mapping):
        return container.get(name)
    return getattr(container, name, None)


def _check_kind(kind: str) -> None:
    if kind not in ATTENTION_KINDS:
        raise ValueError(
            f"Unknown attention kind {kind!r}. Expected one of {sorted(ATTENTION_KINDS)}: 'encoder' "
            "(encoder self-attention), 'decoder' (decoder self-attention) or 'cross' (decoder over encoder)."
        )


def _layers_or_none(attention_weights: Any, kind: str) -> tuple[torch.Tensor, ...] | None:
    _check_kind(kind)
    layers = _field(attention_weights, ATTENTION_KINDS[kind][0])
    if layers is None or len(layers) == 0:
        return None
    for layer_index, weights in enumerate(layers):
        if not isinstance(weights, torch.Tensor) or weights.dim() != 4:
            shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
            raise ValueError(
                f"{ATTENTION_KINDS[kind][0]}[{layer_index}] has shape {shape}; expected a 4-d tensor "
                "(batch, heads, query, key). Pass what model.get_attention_weights(...) or a forward pass "
                "with output_attentions=True returns."
            )
    return tuple(layers)


def _layers(attention_weights: Any, kind: str) -> tuple[torch.Tensor, ...]:
    layers = _layers_or_none(attention_weights, kind)
    if layers is None:
        field_name = ATTENTION_KINDS[kind][0]
        raise ValueError(
            f"The attention weights have no {field_name!r} (kind={kind!r}). Compute them with "
            "model.get_attention_weights(input_ids, decoder_input_ids=...) or a forward pass with "
            "output_attentions=True (decoder and cross attention need decoder_input_ids)."
        )
    return layers


def _check_index(name: str, value: int, count: int, hint: str) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be an integer from 0 to {count - 1} ({hint}).")
    if not 0 <= value < count:
        raise ValueError(f"{name}={value!r} is out of range: valid values are 0 to {count - 1} ({hint}).")


def _check_tokens(
    kind: str,
    layer_index: int,
    weights: torch.Tensor,
    source_tokens: Sequence[str] | None,
    target_tokens: Sequence[str] | None,
) -> None:
    _, query_side, key_side = ATTENTION_KINDS[kind]
    tokens_by_side = {"source": source_tokens, "target": target_tokens}
    for axis, side, length in (("query", query_side, weights.shape[-2]), ("key", key_side, weights.shape[-1])):
        tokens = tokens_by_side[side]
        if tokens is not None and len(tokens) != length:
            raise ValueError(
                f"{len(tokens)} {side}_tokens were given but {kind} attention (layer {layer_index}) has "
                f"{length} {axis} positions; expected exactly {length} {side} tokens. Pass the tokens of the "
                "same tokenized input, including special tokens (tokenizer.convert_ids_to_tokens(ids)), and "
                "drop padding from both or neither."
            )


def _tokens_for(attention_weights: Any, side: str, given: Sequence[str] | None) -> list[str] | None:
    if given is not None:
        return list(given)
    from_container = _field(attention_weights, f"{side}_tokens")
    return list(from_container) if from_container is not None else None


def select_example(
    attention_weights: Any,
    batch_index: int = 0,
    *,
    source_tokens: Sequence[str] | None = None,
    target_tokens: Sequence[str] | None = None,
    source_mask: torch.Tensor | Sequence[int] | None = None,
    target_mask: torch.Tensor | Sequence[int] | None = None,
) -> AttentionExample:
    """Pick example ``batch_index`` from batched attention weights and drop its padding.

    ``attention_weights`` is anything with ``encoder_attentions`` / ``decoder_attentions`` /
    ``cross_attentions`` (``MiniformerAttentionWeights``, ``Seq2SeqLMOutput``, a dict). ``source_tokens``
    and ``target_tokens`` are this example's tokens at full (padded) length; ``source_mask`` /
    ``target_mask`` (1 = real token, 0 = padding, as ``attention_mask``) say which positions to keep.
    """
    if isinstance(attention_weights, AttentionExample):
        if batch_index != 0:
            _check_index("batch_index", batch_index, 1, "an AttentionExample holds a single example")
        return attention_weights
    present = {kind: _layers_or_none(attention_weights, kind) for kind in ATTENTION_KINDS}
    if all(layers is None for layers in present.values()):
        raise ValueError(
            "The attention weights hold no encoder_attentions, decoder_attentions or cross_attentions. "
            "Pass what model.get_attention_weights(...) returns, or a model output computed with "
            "output_attentions=True."
        )
    batch_size = next(layers for layers in present.values() if layers is not None)[0].shape[0]
    _check_index("batch_index", batch_index, batch_size, f"the weights hold a batch of {batch_size}")

    keep = {"source": _positions_to_keep(source_mask, "source_mask"), "target": _positions_to_keep(target_mask, "target_mask")}
    selected: dict[str, tuple[torch.Tensor, ...] | None] = {}
    for kind, layers in present.items():
        if layers is None:
            selected[kind] = None
            continue
        _, query_side, key_side = ATTENTION_KINDS[kind]
        trimmed = []
        for weights in layers:
            weights = weights[batch_index : batch_index + 1].detach().float().cpu()  # (1, H, q, k)
            if keep[query_side] is not None:
                weights = weights[:, :, _fit_mask(keep[query_side], weights.shape[-2], query_side), :]
            if keep[key_side] is not None:
                weights = weights[:, :, :, _fit_mask(keep[key_side], weights.shape[-1], key_side)]
            trimmed.append(weights)
        selected[kind] = tuple(trimmed)

    def trim_tokens(tokens: Sequence[str] | None, side: str) -> list[str] | None:
        if tokens is None:
            return None
        if keep[side] is None:
            return list(tokens)
        mask = _fit_mask(keep[side], len(tokens), side)
        return [token for token, kept in zip(tokens, mask.tolist()) if kept]

    return AttentionExample(
        source_tokens=trim_tokens(_tokens_for(attention_weights, "source", source_tokens), "source"),
        target_tokens=trim_tokens(_tokens_for(attention_weights, "target", target_tokens), "target"),
        encoder_attentions=selected["encoder"],
        decoder_attentions=selected["decoder"],
        cross_attentions=selected["cross"],
    )


def _positions_to_keep(mask: torch.Tensor | Sequence[int] | None, name: str) -> torch.Tensor | None:
    if mask is None:
        return None
    mask = torch.as_tensor(mask)
    if mask.dim() != 1:
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)}; expected the 1-d mask of the selected example "
            f"(for a batch, pass attention_mask[batch_index])."
        )
    return mask.bool().cpu()


def _fit_mask(mask: torch.Tensor, length: int, side: str) -> torch.Tensor:
    if mask.numel() != length:
        raise ValueError(
            f"The {side} mask has {mask.numel()} positions but the attention has {length} {side} positions; "
            f"expected a mask of length {length} (the attention_mask row used for this example)."
        )
    return mask


# ---------------------------------------------------------------------------------------------
# Computing attention from a model
# ---------------------------------------------------------------------------------------------


@contextmanager
def _evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """Attention dropout would make rows not sum to one; restore the caller's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _model_device(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _decoder_start_token_id(model: Any, tokenizer: Any) -> int:
    for config in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        start = getattr(config, "decoder_start_token_id", None)
        if start is not None:
            return int(start)
    if getattr(tokenizer, "bos_token_id", None) is not None:
        return int(tokenizer.bos_token_id)
    raise ValueError(
        "Cannot tell which token starts the decoder: neither model.generation_config nor model.config sets "
        "decoder_start_token_id, and the tokenizer has no bos_token_id. Set "
        "model.config.decoder_start_token_id (Miniformer uses 1, '<s>')."
    )


def _tokens(tokenizer: Any, ids: torch.Tensor | Sequence[int]) -> list[str]:
    return list(tokenizer.convert_ids_to_tokens([int(i) for i in ids]))


def _encode_source(model: Any, tokenizer: Any, source_text: str) -> dict[str, torch.Tensor]:
    if not isinstance(source_text, str) or not source_text:
        raise ValueError(f"source_text must be a non-empty string, got {source_text!r}.")
    encoded = tokenizer(source_text, return_tensors="pt")
    device = _model_device(model)
    batch = {"input_ids": encoded["input_ids"].to(device)}
    if "attention_mask" in encoded:
        batch["attention_mask"] = encoded["attention_mask"].to(device)
    return batch


def _attention_weights(
    model: Any,
    input_ids: torch.Tensor,
    decoder_input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
) -> Any:
    if hasattr(model, "get_attention_weights"):
        return model.get_attention_weights(
            input_ids, decoder_input_ids=decoder_input_ids, attention_mask=attention_mask
        )
    # Any transformers encoder-decoder returns the same three fields with output_attentions=True.
    return model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        decoder_input_ids=decoder_input_ids,
        output_attentions=True,
        return_dict=True,
    )


def attention_example(
    model: Any,
    tokenizer: Any,
    source_text: str,
    target_text: str | None = None,
    *,
    max_new_tokens: int = 64,
    **generate_kwargs: Any,
) -> AttentionExample:
    """The attention of ``model`` on one source text, ready to plot or to view in bertviz.

    With ``target_text`` the decoder is teacher-forced on it: its inputs are the decoder start token
    followed by the target's tokens (as in training, where the labels are shifted right). Without it the
    model generates a target (see :func:`generate_with_attention`) and that is what is shown.
    """
    if target_text is None:
        return generate_with_attention(
            model, tokenizer, source_text, max_new_tokens=max_new_tokens, **generate_kwargs
        )
    batch = _encode_source(model, tokenizer, source_text)
    target_ids = tokenizer(target_text, add_special_tokens=False)["input_ids"]
    decoder_ids = [_decoder_start_token_id(model, tokenizer), *target_ids]
    decoder_input_ids = torch.tensor([decoder_ids], device=batch["input_ids"].device)
    with _evaluation_mode(model):
        weights = _attention_weights(model, batch["input_ids"], decoder_input_ids, batch.get("attention_mask"))
    return select_example(
        weights,
        0,
        source_tokens=_tokens(tokenizer, batch["input_ids"][0]),
        target_tokens=_tokens(tokenizer, decoder_ids),
        source_mask=batch["attention_mask"][0] if "attention_mask" in batch else None,
    )


def generate_with_attention(
    model: Any,
    tokenizer: Any,
    source_text: str,
    *,
    max_new_tokens: int = 64,
    **generate_kwargs: Any,
) -> AttentionExample:
    """Generate a target for ``source_text`` and return the attention the model used while generating.

    ``generate_kwargs`` go to ``model.generate`` (for example ``num_beams=4``); the generation settings
    saved with the model apply otherwise. The returned example's ``generated_tokens`` are the generated
    tokens, one per decoder row.
    """
    batch = _encode_source(model, tokenizer, source_text)
    with _evaluation_mode(model):
        output = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            output_attentions=True,
            return_dict_in_generate=True,
            **generate_kwargs,
        )
    return attention_from_generation(
        output, tokenizer, input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")
    )


def attention_from_generation(
    generate_output: Any,
    tokenizer: Any,
    *,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    index: int = 0,
    eos_token_id: int | None = None,
) -> AttentionExample:
    """Stitch the per-step attentions of ``generate()`` into one example's full attention matrices.

    ``generate(..., output_attentions=True, return_dict_in_generate=True)`` returns, for each generation
    step, a tuple over layers of ``(batch * beams, H, q, k)``: with a KV cache ``q`` is 1 after the first
    step and ``k`` grows by one each step; without a cache each step recomputes every row. Row ``t`` of the
    stitched matrices is the step that produced generated token ``t``; with beam search it is taken from
    the beam that token came from (``beam_indices``). ``index`` picks the returned sequence; ``input_ids``
    and ``attention_mask`` are the batch given to ``generate`` (padding is dropped from the source).
    Decoder self-attention is zero above the diagonal by construction: a step never sees later tokens.
    """
    cross_steps = _field(generate_output, "cross_attentions")
    decoder_steps = _field(generate_output, "decoder_attentions")
    encoder_layers = _field(generate_output, "encoder_attentions")
    sequences = _field(generate_output, "sequences")
    if not cross_steps or sequences is None:
        raise ValueError(
            "The generate() output holds no cross_attentions. Call model.generate(..., "
            "output_attentions=True, return_dict_in_generate=True) on an encoder-decoder model."
        )
    num_sequences = sequences.shape[0]
    _check_index("index", index, num_sequences, f"generate() returned {num_sequences} sequences")
    if eos_token_id is None:
        eos_token_id = getattr(tokenizer, "eos_token_id", None)

    prompt_length = cross_steps[0][0].shape[-2]  # decoder positions fed before the first new token
    generated_ids = sequences[index, prompt_length:].tolist()[: len(cross_steps)]
    if eos_token_id is not None and eos_token_id in generated_ids:
        generated_ids = generated_ids[: generated_ids.index(eos_token_id) + 1]
    num_generated = len(generated_ids)
    if num_generated == 0:
        raise ValueError("generate() produced no new tokens for this sequence; nothing to show.")

    beam_indices = _field(generate_output, "beam_indices")
    if beam_indices is not None:
        rows = [int(beam_indices[index, step]) for step in range(num_generated)]
    else:
        rows = [index] * num_generated
    decoder_length = prompt_length + num_generated - 1  # decoder inputs: prompt + all but the last new token

    def stitch(steps: Sequence[Sequence[torch.Tensor]], layer: int, key_length: int | None) -> torch.Tensor:
        pieces = []
        for step in range(num_generated):
            weights = steps[step][layer][rows[step]].detach().float().cpu()  # (H, q, k)
            pieces.append(weights if step == 0 else weights[:, -1:, :])  # step 0 holds every prompt row
        if key_length is None:
            return torch.cat(pieces, dim=1).unsqueeze(0)  # (1, H, T, S)
        padded = []
        for piece in pieces:
            piece = piece[:, :, :key_length]  # a static cache may be longer than what was generated
            padded.append(torch.nn.functional.pad(piece, (0, key_length - piece.shape[-1])))
        return torch.cat(padded, dim=1).unsqueeze(0)  # (1, H, T, T)

    num_layers = len(cross_steps[0])
    cross = tuple(stitch(cross_steps, layer, None) for layer in range(num_layers))
    decoder = None
    if decoder_steps:
        decoder = tuple(stitch(decoder_steps, layer, decoder_length) for layer in range(len(decoder_steps[0])))
    encoder = None
    if encoder_layers:
        # The encoder runs once per input; beams and num_return_sequences repeat each input.
        source_row = index // max(1, num_sequences // encoder_layers[0].shape[0])
        encoder = tuple(weights[source_row : source_row + 1] for weights in encoder_layers)
    else:
        source_row = index // max(1, num_sequences // input_ids.shape[0])

    stitched = {"encoder_attentions": encoder, "decoder_attentions": decoder, "cross_attentions": cross}
    example = select_example(
        stitched,
        0,
        source_tokens=_tokens(tokenizer, input_ids[source_row]),
        target_tokens=_tokens(tokenizer, sequences[index, :decoder_length]),
        source_mask=attention_mask[source_row] if attention_mask is not None else None,
    )
    # The token each decoder row produced: the next token of the sequence (the new tokens, after a prompt).
    example.generated_tokens = _tokens(tokenizer, sequences[index, 1 : decoder_length + 1])
    return example


# ---------------------------------------------------------------------------------------------
# matplotlib heatmaps
# ---------------------------------------------------------------------------------------------


def _display_token(token: str) -> str:
    # A bare space (character tokenizers) would be an invisible tick label.
    return token.replace(" ", "\u2423") if token.strip() == "" else token


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
    source = _tokens_for(attention_weights, "source", source_tokens)
    target = _tokens_for(attention_weights, "target", target_tokens)
    _check_tokens(kind, layer, matrix.unsqueeze(0).unsqueeze(0), source, target)
    by_side = {"source": source, "target": target}
    _, query_side, key_side = ATTENTION_KINDS[kind]
    return by_side[query_side], by_side[key_side]


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
    ax.set_ylabel(f"query: {_AXIS_NAMES[query_side]}")
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

    Row ``i`` is the cross-attention of the decoder step that produced generated token ``i``. ``layer``
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
        example, layer, head, kind="cross", target_tokens=example.generated_tokens, cmap=cmap,
        title=title if title is not None else
        f"Cross-attention while generating, layer {layer}, {'mean of heads' if head is None else f'head {head}'}",
    )
    figure.axes[0].set_ylabel("generated token")
    return figure


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


# ---------------------------------------------------------------------------------------------
# Everything for one example, and the command line
# ---------------------------------------------------------------------------------------------


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
    target: ``attention.html`` and ``attention_<kind>.png``. The model's train/eval mode is restored.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    generated = generate_with_attention(
        model, tokenizer, source_text, max_new_tokens=max_new_tokens, **generate_kwargs
    )
    logger.info("Source %r generated tokens: %s", source_text, " ".join(generated.generated_tokens or []))
    written: dict[str, Path] = {
        "generation_html": save_attention_html(
            out_dir / "generation.html", generated, title="Miniformer attention while generating",
            description="Each decoder row is the input at that step; it produced the next token "
            "(the 'Generated' line). Cross attention shows where each step looked in the source.",
        ),
        "alignment_png": _save_figure(plot_generation_alignment(generated), out_dir / "generation_alignment.png"),
    }
    written.update(_write_plots(generated, out_dir, "generation_"))
    if target_text is not None:
        forced = attention_example(model, tokenizer, source_text, target_text)
        written["attention_html"] = save_attention_html(
            out_dir / "attention.html", forced, title="Miniformer attention (teacher-forced on the target)"
        )
        written.update(_write_plots(forced, out_dir, "attention_"))
    return written


def add_visualize_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``miniformer visualize --model DIR "source text" --out DIR`` (defined with the rest
    of the command line in `miniformer_hf.cli`, which must parse them without importing torch)."""
    from .cli import add_visualize_arguments as add_arguments

    return add_arguments(parser)


def run_visualize(args: argparse.Namespace) -> int:
    """Run ``miniformer visualize``; returns the process exit code."""
    model_dir = Path(args.model)
    if not model_dir.is_dir():
        logger.error(
            "--model %s is not a folder; expected a run folder from `miniformer train` (holding "
            "config.json and the tokenizer). Check the path.", model_dir,
        )
        return 2
    from .runs import load_run_folder
    from .generation import check_generation_inputs

    model, tokenizer = load_run_folder(model_dir)  # config.json, checksum and corrupt files: one clear error
    check_generation_inputs(model, tokenizer, [args.source], args.max_new_tokens)  # before any generation
    generate_kwargs = {} if args.num_beams is None else {"num_beams": args.num_beams}
    written = visualize_example(
        model, tokenizer, args.source, args.out, target_text=args.target,
        max_new_tokens=args.max_new_tokens, **generate_kwargs,
    )
    for name, path in written.items():
        logger.debug("%s: %s", name, path)
    logger.info(
        "Wrote %d attention views to %s (%s). Open %s in any browser; it needs no network.",
        len(written), args.out, ", ".join(sorted(path.name for path in written.values())),
        written["generation_html"],
    )
    return 0


__all__ = [
    "ATTENTION_KINDS",
    "AttentionExample",
    "add_visualize_arguments",
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
    "run_visualize",
    "save_attention_html",
    "select_example",
    "visualize_example",
]
