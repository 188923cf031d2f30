"""Input checks for Miniformer: one place that validates each input, with one clear message for each way it
can be wrong (what was wrong, what was expected, how to fix it), used by every head in both the plain and the
fast path. Checks that read tensor values are skipped under torch.compile / torch.export, where they would
break the graph.

This file travels with every saved checkpoint beside ``modeling_miniformer.py``, which imports it.
"""

import torch


def check_ids_shape(ids: torch.Tensor, name: str = "input_ids") -> None:
    if not torch.compiler.is_compiling() and (ids.dim() != 2 or ids.is_floating_point()):
        raise ValueError(
            f"{name} have shape {tuple(ids.shape)} and dtype {ids.dtype}, but the model expects integer ids of "
            "shape (batch, length); for one sequence, add a batch dimension with ids[None]."
        )


def check_batch(inputs: torch.Tensor, name: str) -> tuple[int, int]:
    """(batch, length) of ids or embeddings, refusing an empty batch or an empty sequence."""
    if inputs.dim() < 2:
        check_ids_shape(inputs, name)
    batch, length = inputs.shape[:2]
    if not torch.compiler.is_compiling() and (batch == 0 or length == 0):
        raise ValueError(
            f"{name} has shape {tuple(inputs.shape)}: an empty batch or an empty sequence cannot be encoded. "
            "Pass at least one sequence of at least one token (batch >= 1, length >= 1)."
        )
    return batch, length


def check_token_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    check_ids_shape(input_ids)
    if torch.compiler.is_compiling() or input_ids.numel() == 0:
        return
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"Token id {low if low < 0 else high} is outside the vocabulary: ids must lie in [0, {vocab_size - 1}] "
            f"(vocab_size={vocab_size}). Check that the tokenizer matches the model, and replace "
            "label-style -100 values with the pad id in model inputs."
        )


def check_mask(mask: torch.Tensor | None, name: str, expected: tuple) -> None:
    if mask is not None and not torch.compiler.is_compiling() and tuple(mask.shape) != tuple(expected):
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)}, but the inputs need a 2D mask of shape {tuple(expected)} "
            "(batch, sequence length) with 1 for real tokens and 0 for padding."
        )


def check_labels(labels: torch.Tensor, vocab_size: int) -> None:
    check_batch(labels, "labels")
    if torch.compiler.is_compiling():
        return
    bad = labels[(labels != -100) & ((labels < 0) | (labels >= vocab_size))]
    if bad.numel():
        raise ValueError(
            f"Label {int(bad[0])} is outside the vocabulary: labels must lie in [0, {vocab_size - 1}] "
            f"(vocab_size={vocab_size}), or be -100 for positions the loss ignores. Check that the "
            "tokenizer matches the model."
        )


__all__ = ["check_batch", "check_ids_shape", "check_labels", "check_mask", "check_token_ids"]
