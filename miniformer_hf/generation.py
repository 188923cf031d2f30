"""Generating text with a trained model: batched `generate`, cut outputs, and the checks made before it.

Used by training (evaluation and the final report), ``miniformer generate``/``evaluate``/``visualize``
and the demo; it needs only torch and the model, not the trainer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import MiniformerError

__all__ = [
    "GenerationInputError",
    "check_generation_inputs",
    "generate_texts",
    "generate_texts_with_cuts",
    "generation_length",
    "token_lengths",
]


class GenerationInputError(MiniformerError):
    """A source text or a generation length that the model cannot take."""


@torch.no_grad()
def generate_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 256,
    **generate_kwargs,
) -> list[str]:
    """Decode ``texts`` in batches with ``model.generate`` (the model's generation config unless
    overridden) and return the decoded strings."""
    return generate_texts_with_cuts(model, tokenizer, texts, batch_size, **generate_kwargs)[0]


@torch.no_grad()
def generate_texts_with_cuts(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 256,
    **generate_kwargs,
) -> tuple[list[str], list[int]]:
    """`generate_texts`, plus the indices of the outputs that ended without an end-of-sequence token,
    that is, were cut by the generation length (``max_new_tokens``) rather than finished."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    eos_token_id = model.generation_config.eos_token_id
    if eos_token_id is None:
        eos_token_id = model.config.eos_token_id
    eos_ids = set(eos_token_id if isinstance(eos_token_id, (list, tuple)) else [eos_token_id])
    outputs: list[str] = []
    cut: list[int] = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start : start + batch_size]), padding=True, return_tensors="pt").to(device)
            batch.pop("token_type_ids", None)
            generated = model.generate(**batch, **_length_over_input(model, batch["input_ids"], generate_kwargs))
            outputs.extend(tokenizer.batch_decode(generated, skip_special_tokens=True))
            for offset, row in enumerate(generated.tolist()):
                if not eos_ids.intersection(row[1:]):  # row[0] is the decoder start token
                    cut.append(start + offset)
    finally:
        model.train(was_training)
    return outputs, cut


def _length_over_input(model, input_ids: torch.Tensor, generate_kwargs: dict) -> dict:
    """``generate_kwargs`` with ``max_new_tokens`` = input length + N when the generation config asks for it.

    §6.1: "We set the maximum output length during inference to input length + 50". A generation
    config holding ``max_new_tokens_over_input`` (N) gets that limit per batch (the longest input in
    it); an explicit ``max_new_tokens`` wins. Other tools read the config's plain ``max_new_tokens``.
    """
    over_input = getattr(model.generation_config, "max_new_tokens_over_input", None)
    if over_input is None or "max_new_tokens" in generate_kwargs:
        return generate_kwargs
    return {**generate_kwargs, "max_new_tokens": int(input_ids.shape[1]) + int(over_input)}


def token_lengths(tokenizer, texts: Sequence[str]) -> list[int]:
    """Token counts of ``texts`` as the model sees them (special tokens included), without the
    library's warning about sequences over ``model_max_length`` (checking them is the point)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [len(encoding.ids) for encoding in backend.encode_batch(list(texts), add_special_tokens=True)]
    return [len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]


def generation_length(model, max_new_tokens: int | None = None) -> int | None:
    """The number of new tokens ``generate`` may produce: ``max_new_tokens``, else the model's
    generation config (``max_new_tokens``, or ``max_length`` minus the decoder start token)."""
    if max_new_tokens is not None:
        return max_new_tokens
    config = getattr(model, "generation_config", None)
    if config is None:
        return None
    if config.max_new_tokens is not None:
        return config.max_new_tokens
    return None if config.max_length is None else config.max_length - 1


def check_generation_inputs(model, tokenizer, texts: Sequence[str], max_new_tokens: int | None = None) -> int | None:
    """Raise `GenerationInputError` before any generation when a text is empty, a source does not fit the
    positional table, or the requested output length exceeds it; return the generation length."""
    limit = getattr(model.config, "max_position_embeddings", None)
    length = generation_length(model, max_new_tokens)
    if limit is not None and length is not None and length > limit:
        raise GenerationInputError(
            f"--max-new-tokens {length} exceeds the model's positional table: max_position_embeddings is {limit}, "
            f"so at most {limit} new tokens can be generated; expected --max-new-tokens {limit} or less."
        )
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            raise GenerationInputError(
                f"source text {number} is empty; expected non-empty text (train, generate and visualize all refuse "
                "empty text)."
            )
    if limit is not None and texts:
        for number, source_length in enumerate(token_lengths(tokenizer, texts), start=1):
            if source_length > limit:
                raise GenerationInputError(
                    f"source text {number} is {source_length} tokens long (end-of-sequence included), but the model's "
                    f"positional table holds {limit} positions; expected a shorter text (split it)."
                )
    return length
