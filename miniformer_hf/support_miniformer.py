"""What the paper file leans on but a reader of the paper need not meet first.

* Input checks: one place that validates each input, with one clear message for each way it can be wrong
  (what was wrong, what was expected, how to fix it), used by every head in both the plain and the fast path.
  Checks that read tensor values are skipped under torch.compile / torch.export, where they would break the
  graph.
* ``select_hidden_states``: transformers' ``output_hidden_states`` as a flag or as the indices of the hidden states
  to return (the others come back as None), as models that record their outputs through hooks accept it.
* ``get_attention_weights`` (for ``plot_attention`` and bertviz) and transformers' position-table API
  (``resize_position_embeddings``, ``get_position_embeddings``), as mixins of the model classes.

This file travels with every saved checkpoint beside ``modeling_miniformer.py``, which imports it.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput


def check_memory(encoder_hidden_states, has_cross_attention: bool) -> None:
    if has_cross_attention and encoder_hidden_states is None:
        raise ValueError(
            "This decoder attends over the encoder output: pass encoder_hidden_states (B, S, D), or use "
            "MiniformerForCausalLM for a decoder without cross-attention."
        )


def check_decoder_source(input_ids) -> None:
    if input_ids is None:
        raise ValueError(
            "No decoder inputs: pass decoder_input_ids (or labels), or pass input_ids so the decoder "
            "inputs can be derived by shifting them right."
        )


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
    if mask is None or torch.compiler.is_compiling() or mask.dim() == 4:  # generate() builds 4D masks itself
        return
    if tuple(mask.shape) != tuple(expected):
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


def select_hidden_states(all_hidden: list, output_hidden_states) -> tuple | None:
    """transformers' `output_hidden_states`: a flag (every hidden state or none), or an index or a list of indices
    (negative ones count from the end) choosing which to keep; the others are None, so each keeps its position."""
    if output_hidden_states is None or isinstance(output_hidden_states, bool):
        return tuple(all_hidden) if output_hidden_states else None
    count = len(all_hidden)
    indices = [output_hidden_states] if isinstance(output_hidden_states, int) else output_hidden_states
    keep = {index % count for index in indices if -count <= index < count}
    return tuple(hidden if position in keep else None for position, hidden in enumerate(all_hidden))


@dataclass
class MiniformerAttentionWeights(ModelOutput):
    """Attention weights per layer, each (B, H, query, key): what `plot_attention` and bertviz take."""

    encoder_attentions: tuple[torch.Tensor, ...] | None = None
    decoder_attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


class AttentionWeightsMixin:
    """``get_attention_weights`` for the encoder-decoder model classes."""

    @torch.no_grad()
    def get_attention_weights(self, input_ids, decoder_input_ids=None, attention_mask=None):
        """Encoder, decoder and cross attention per layer, each (B, H, query, key), whatever
        `attn_implementation` is set (the readable path computes them). Runs in eval mode."""
        check_ids_shape(input_ids)
        check_batch(input_ids, "input_ids")
        was_training = self.training
        try:
            outputs = self.eval().model(input_ids, attention_mask, decoder_input_ids, use_cache=False,
                                        output_attentions=True, return_dict=True)
        finally:
            self.train(was_training)
        return MiniformerAttentionWeights(outputs.encoder_attentions, outputs.decoder_attentions, outputs.cross_attentions)


class PositionTablesMixin:
    """transformers' position-table API: every positional encoding module (sinusoidal or learned) of the model."""

    def position_modules(self):
        return [module for module in self.modules() if hasattr(module, "max_positions") and hasattr(module, "learned")]

    def resize_position_embeddings(self, new_num_position_embeddings: int) -> None:
        """Make every positional table cover `new_num_position_embeddings` positions (used e.g. by the example
        run_summarization.py): the sinusoid table is recomputed; a learned table keeps its rows and draws new
        ones from N(0, init_std)."""
        from .modeling_miniformer import sinusoidal_table

        std = self.config.init_std or self.config.d_model**-0.5
        for module in self.position_modules():
            if module.learned:
                old = module.weight.data
                new = old.new_empty(new_num_position_embeddings, old.shape[1]).normal_(mean=0.0, std=std)  # (P, D)
                keep = min(new_num_position_embeddings, old.shape[0])
                new[:keep] = old[:keep]
                module.weight = nn.Parameter(new, requires_grad=module.weight.requires_grad)
            else:
                table = sinusoidal_table(new_num_position_embeddings, module.table.shape[1])  # (P, D)
                module.register_buffer("table", table.to(module.table.device, module.table.dtype), persistent=False)
            module.max_positions = new_num_position_embeddings
        self.config.max_position_embeddings = new_num_position_embeddings

    def get_position_embeddings(self) -> torch.Tensor | tuple[torch.Tensor, ...]:
        tables = tuple(module.weight if module.learned else module.table for module in self.position_modules())
        return tables[0] if len(tables) == 1 else tables


__all__ = ["AttentionWeightsMixin", "MiniformerAttentionWeights", "PositionTablesMixin", "check_batch",
           "check_decoder_source", "check_ids_shape", "check_labels", "check_mask", "check_memory", "check_token_ids",
           "select_hidden_states"]
