"""Attention of one example: the weights a model returns, checked, trimmed and labelled.

Everything here reads the attention weights the model already returns (``model.get_attention_weights``,
``output_attentions=True``, or ``generate(..., output_attentions=True, return_dict_in_generate=True)``):
tuples over layers of ``(B, H, query, key)`` float tensors for three kinds of attention.

    kind       field                  query (rows)              key (columns)
    encoder    encoder_attentions     source (S)                source (S)
    decoder    decoder_attentions     decoder input (T)         decoder input (T)   zero above the diagonal
    cross      cross_attentions       decoder input (T)         source (S)

A row of decoder or cross attention belongs to a decoder *input* position; while generating, the step
fed decoder input ``t`` produced generated token ``t`` (`AttentionExample.generated_tokens`), and the
plots label such a row with both (``input → produced``).

Contents
    AttentionExample             one example's weights (batch of 1) and its tokens
    select_example               pick one example from a batch and drop its padding
    attention_example            run the model on a source (and optional target) text
    attention_from_generation    stitch ``generate()`` step attentions into one example
    generate_with_attention      generate from a source text and keep the attention

Plots are in `miniformer_hf.attention_plots`, bertviz views and offline HTML in
`miniformer_hf.attention_html`, and `miniformer_hf.visualization` writes them all for one example.
"""

from __future__ import annotations

import importlib
import numbers
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import torch

VIZ_INSTALL_HINT = 'pip install "miniformer-hf[viz]"'

# kind -> (field on the weights object, which tokens label the query axis, which label the key axis)
ATTENTION_KINDS: dict[str, tuple[str, str, str]] = {
    "encoder": ("encoder_attentions", "source", "source"),
    "decoder": ("decoder_attentions", "target", "target"),
    "cross": ("cross_attentions", "target", "source"),
}
_AXIS_NAMES = {"source": "source token (encoder)", "target": "decoder input token"}


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


def _display_token(token: str) -> str:
    # A bare space (character tokenizers) would be an invisible tick label.
    return token.replace(" ", "\u2423") if token.strip() == "" else token


def row_labels(example: Any, kind: str) -> list[str] | None:
    """Labels of the query rows of ``kind`` attention in ``example``, the same in every plot.

    Encoder rows are source tokens. Decoder and cross rows are decoder inputs; for a generated output
    each row also names the token that step produced: ``"<s> → 2"``.
    """
    _, query_side, _ = ATTENTION_KINDS[kind]
    tokens = _field(example, f"{query_side}_tokens")
    if tokens is None:
        return None
    generated = _field(example, "generated_tokens") if query_side == "target" else None
    if generated is None or len(generated) != len(tokens):
        return list(tokens)
    return [f"{_display_token(given)} \u2192 {_display_token(produced)}" for given, produced in zip(tokens, generated)]
