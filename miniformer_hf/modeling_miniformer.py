"""Miniformer: the encoder-decoder Transformer of Vaswani et al., "Attention Is All You Need" (2017),
https://arxiv.org/abs/1706.03762, written in paper order as a native Hugging Face ``transformers`` model.

This file travels with every saved checkpoint (``trust_remote_code``): it imports only the standard
library, ``torch``, public ``transformers`` API and the configuration beside it.

Contents (paper order)
    1. Positional encoding ............................ §3.5
    2. Embeddings (shared, scaled by sqrt(d_model)) ... §3.4
    3. Scaled dot-product attention ................... §3.2.1, Eq. 1
    4. Multi-head attention ........................... §3.2.2
    5. Position-wise feed-forward network ............. §3.3, Eq. 2
    6. Residual connection + LayerNorm sub-layer ...... §3.1
    7. Encoder and decoder layers, masking ............ §3.1, §3.2.3
    8. Encoder and decoder stacks ..................... §3.1
    9. PreTrainedModel classes and heads

Shape legend
    B batch, S source length, T target length (queries), K key length (S, or past + T with a cache),
    D = d_model, H = n_heads, Dh = D / H (the paper's d_k = d_v), F = d_ff, V = vocab_size.

Deviations from the paper (the first five are config fields, off by default; the last three are
implementation choices where the paper is silent or where speed needs an approximation)
    - ``norm_placement="pre"``: LayerNorm before each sub-layer plus a final LayerNorm per stack.
    - ``positional_encoding="learned"``: learned positions (the paper's Table 3, row E).
    - ``activation``: GELU/SiLU instead of ReLU in the feed-forward network.
    - ``attention_dropout`` / ``activation_dropout``: dropout the paper does not apply (default 0).
    - ``scale_embedding=False`` / ``tie_word_embeddings=False``: undo §3.4's scaling or sharing.
    - Linear layers carry biases (the paper does not say; ``torch.nn.Transformer`` and BART do).
    - Initialisation (unspecified in the paper): Xavier-uniform linear weights, zero biases, and
      embeddings drawn from N(0, d_model^-0.5) so that scaled embeddings start with unit variance.
    - Dropout on CPU draws 16 random bits per element (``MiniformerDropout``), so P_drop is rounded to
      a multiple of 2^-16 (0.1 becomes 0.100006); on other devices and under torch.compile it is exact.
"""

import copy
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    Seq2SeqSequenceClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, logging

from .configuration_miniformer import MiniformerConfig

logger = logging.get_logger(__name__)


def _is_tracing() -> bool:
    """True under torch.compile / torch.export, where data-dependent checks must be skipped."""
    return torch.compiler.is_compiling()


class MiniformerDropout(nn.Dropout):
    """Dropout (§5.4): zero each element with probability p and scale the survivors by 1 / (1 - p).

    On CPU, ``nn.Dropout`` draws one Bernoulli sample per element, about 20 ns each: 14% of a tiny
    model's training step. Here each 64-bit random word gives four elements 16 uniform bits, so p is
    rounded to a multiple of 2^-16 (0.1 becomes 0.100006), and the 0/1 mask comes from clamps, which
    vectorise, rather than comparisons: the masks cost about a quarter as much. On other devices and
    under torch.compile (which generates its own) it is ``nn.Dropout``.
    """

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """Dropout(x); with `residual`, residual + Dropout(x) in one pass (the sub-layer's sum, §3.1)."""
        if self.training and self.p > 0.0:
            if x.device.type == "cpu" and not _is_tracing():
                return self._cpu_dropout(x, residual)
            x = F.dropout(x, self.p, training=True)
        return x if residual is None else residual + x

    def _cpu_dropout(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        drop_below = round(self.p * 2**16) - 2**15  # int16 values below this are dropped
        keep_prob = (2**15 - drop_below) / 2**16
        words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64, device=x.device)
        words.random_(-(2**63), 2**63 - 1)  # uniform 64-bit words
        uniform = words.view(torch.int16)[: x.numel()].view(x.shape)  # 16 uniform bits per element
        keep = uniform.float().clamp_(drop_below - 1, drop_below).sub_(drop_below - 1).to(x.dtype)  # 1 keep, 0 drop
        if residual is None:
            return x * keep.mul_(1.0 / keep_prob)
        return torch.addcmul(residual, x, keep, value=1.0 / keep_prob)


# ------------------------------------------------------------------------------------------------
# 1. Positional encoding (§3.5)
#    PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
#    PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))
# ------------------------------------------------------------------------------------------------


def sinusoidal_table(num_positions: int, d_model: int) -> torch.Tensor:
    """The paper's sinusoid table, sin on even and cos on odd dimensions (interleaved)."""
    positions = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)  # (P, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(D/2),)
    angles = positions / torch.pow(10000.0, two_i / d_model)  # (P, ceil(D/2))
    table = torch.zeros(num_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table.float()


class MiniformerPositionalEncoding(nn.Module):
    """Adds position information: the fixed sinusoid table (paper) or a learned table (Table 3, row E)."""

    def __init__(self, config: MiniformerConfig):
        super().__init__()
        self.max_positions = config.max_position_embeddings
        self.learned = config.positional_encoding == "learned"
        if self.learned:
            self.weight = nn.Parameter(torch.empty(self.max_positions, config.d_model))  # (P, D)
        else:
            # Not saved with the weights: it is a function of the config alone.
            self.register_buffer("table", sinusoidal_table(self.max_positions, config.d_model), persistent=False)

    def resize(self, num_positions: int, std: float) -> None:
        """Cover `num_positions` positions: the sinusoid table is recomputed; a learned table keeps its first
        rows and draws any new ones from N(0, std)."""
        if self.learned:
            old = self.weight.data
            new = old.new_empty(num_positions, old.shape[1]).normal_(mean=0.0, std=std)
            keep = min(num_positions, old.shape[0])
            new[:keep] = old[:keep]
            self.weight = nn.Parameter(new, requires_grad=self.weight.requires_grad)
        else:
            table = sinusoidal_table(num_positions, self.table.shape[1])
            self.register_buffer("table", table.to(self.table.device, self.table.dtype), persistent=False)
        self.max_positions = num_positions

    def forward(self, seq_len: int, offset: int | torch.Tensor = 0) -> torch.Tensor:
        if not _is_tracing() and offset + seq_len > self.max_positions:
            raise ValueError(
                f"Sequence reaches position {offset + seq_len}, but max_position_embeddings is "
                f"{self.max_positions}. Shorten the input (nothing is truncated silently) or build the model "
                "with a larger max_position_embeddings."
            )
        table = self.weight if self.learned else self.table
        # Gathered rather than sliced: a static cache counts its length in a tensor, and a compiled graph
        # cannot slice at a tensor-valued offset.
        positions = torch.arange(seq_len, device=table.device) + offset  # (L,)
        return table[positions]  # (L, D)


# ------------------------------------------------------------------------------------------------
# 2. Embeddings (§3.4): one token table shared by source and target, multiplied by sqrt(d_model),
#    plus the positional encoding; dropout on the sum (§5.4).
# ------------------------------------------------------------------------------------------------


class MiniformerScaledEmbedding(nn.Embedding):
    """The token table, whose lookups are multiplied by sqrt(d_model) (§3.4). Scaling inside the table makes
    `model.get_input_embeddings()(ids)` exactly what the stacks add positions to, as `inputs_embeds` expects."""

    def __init__(self, config: MiniformerConfig):
        super().__init__(config.vocab_size, config.d_model, config.pad_token_id)  # (V, D)
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(input_ids) * self.embed_scale  # (B, L, D)


class MiniformerEmbeddings(nn.Module):
    def __init__(self, config: MiniformerConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.use_table(embed_tokens)
        self.embed_positions = MiniformerPositionalEncoding(config)
        self.vocab_size = config.vocab_size
        self.dropout = MiniformerDropout(config.dropout)

    def use_table(self, embed_tokens: nn.Embedding) -> None:
        # The shared table is the same module object in both stacks, but it is registered only once, as the
        # model's `shared`: a plain reference here keeps one name per weight in the state dict, which is what
        # transformers' saving, loading and tying expect (they tie parameters, never modules).
        self.__dict__["embed_tokens"] = embed_tokens

    def forward(self, input_ids=None, inputs_embeds=None, offset: int = 0) -> torch.Tensor:
        if inputs_embeds is None:
            check_token_ids(input_ids, self.embed_tokens.num_embeddings)
            inputs_embeds = self.embed_tokens(input_ids)  # scaled by sqrt(d_model): (B, L, D)
        positions = self.embed_positions(inputs_embeds.shape[1], offset)  # (L, D)
        return self.dropout(inputs_embeds + positions.to(inputs_embeds.dtype))  # (B, L, D)


def check_ids_shape(ids: torch.Tensor) -> None:
    if _is_tracing():
        return
    if ids.dim() != 2 or ids.is_floating_point():
        raise ValueError(
            f"Token ids have shape {tuple(ids.shape)} and dtype {ids.dtype}, but the model expects "
            "integer ids of shape (batch, length); for one sequence, add a batch dimension with ids[None]."
        )


def check_token_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    check_ids_shape(input_ids)
    if _is_tracing() or input_ids.numel() == 0:
        return
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"Token id {bad} is outside the vocabulary: ids must lie in [0, {vocab_size - 1}] "
            f"(vocab_size={vocab_size}). Check that the tokenizer matches the model, and replace "
            "label-style -100 values with the pad id in model inputs."
        )


# ------------------------------------------------------------------------------------------------
# 3. Scaled dot-product attention (§3.2.1, Eq. 1):  Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V
#    Masks are boolean and broadcast to (B, H, T, K): True where a query may attend to a key.
# ------------------------------------------------------------------------------------------------


def scaled_dot_product_attention(query, key, value, mask=None, dropout_p: float = 0.0, training: bool = False):
    """The readable path: returns the output (B, H, T, Dh) and the attention weights (B, H, T, K)."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])  # (B, H, T, K)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # (B, H, T, K)
    weights = scores.softmax(dim=-1)  # (B, H, T, K)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)  # a row with nothing to attend to stays all zero
    weights = F.dropout(weights, p=dropout_p, training=training)  # (B, H, T, K)
    return weights @ value, weights  # (B, H, T, Dh), (B, H, T, K)


def causal_mask(query_len: int, key_len: int, device) -> torch.Tensor:
    """(T, K) lower-triangular mask aligned to the last key: query t sees keys up to K - T + t (§3.2.3)."""
    return torch.ones(query_len, key_len, dtype=torch.bool, device=device).tril(diagonal=key_len - query_len)


# ------------------------------------------------------------------------------------------------
# 4. Multi-head attention (§3.2.2):  MultiHead(Q, K, V) = Concat(head_1..head_h) W^O,
#    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)
# ------------------------------------------------------------------------------------------------


class MiniformerAttention(nn.Module):
    def __init__(self, config: MiniformerConfig, layer_idx: int, is_cross_attention: bool = False):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_cross_attention = is_cross_attention
        self.n_heads = config.n_heads
        self.head_dim = config.d_model // config.n_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False  # read by transformers' flash-attention interface; set per call
        self.dropout_p = config.attention_dropout
        self.q_proj = nn.Linear(config.d_model, config.d_model)  # W^Q for all heads: D -> H*Dh
        self.k_proj = nn.Linear(config.d_model, config.d_model)  # W^K for all heads: D -> H*Dh
        self.v_proj = nn.Linear(config.d_model, config.d_model)  # W^V for all heads: D -> H*Dh
        self.out_proj = nn.Linear(config.d_model, config.d_model)  # W^O: H*Dh -> D

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, L, Dh)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: Cache | None = None,
        output_attentions: bool = False,
        padding_mask: torch.Tensor | None = None,
    ):
        batch, query_len, _ = hidden_states.shape
        query = self._split_heads(self.q_proj(hidden_states))  # (B, H, T, Dh)
        key, value = self._project_keys_values(hidden_states, key_value_states, cache)  # (B, H, K, Dh) each

        implementation = self.config._attn_implementation or "sdpa"
        dropout_p = self.dropout_p if self.training else 0.0
        weights = None
        if output_attentions or implementation == "eager":
            if is_causal:
                mask = causal_mask(query_len, key.shape[2], query.device)  # (T, K)
            output, weights = scaled_dot_product_attention(query, key, value, mask, dropout_p, self.training)
        elif implementation == "sdpa":
            output = F.scaled_dot_product_attention(
                query, key, value, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
            )  # (B, H, T, Dh)
        else:
            # flash_attention_2 and other kernels registered with transformers take (B, H, L, Dh) and a
            # 2D key padding mask, and read `is_causal` from the module. The implementation is looked up on
            # every call, so `model.set_attn_implementation(...)` switches it on a built model.
            self.is_causal = is_causal
            kernel = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, None)  # raises on unknown names
            output, _ = kernel(self, query, key, value, padding_mask, dropout=dropout_p, scaling=self.scaling)
            output = output.transpose(1, 2)  # the kernels return (B, T, H, Dh)
        output = output.transpose(1, 2).reshape(batch, query_len, -1)  # Concat(head_1..head_h): (B, T, D)
        return self.out_proj(output), weights  # (B, T, D), (B, H, T, K) or None

    def _project_keys_values(self, hidden_states, key_value_states, cache):
        # W^Q, W^K and W^V stay three matmuls: one over their concatenated weights measured no faster on
        # CPU at either benchmark size (the weight copy and the gradient's re-layout eat the gain).
        if self.is_cross_attention:
            # The memory (encoder output) is fixed during decoding: project it once, then reuse.
            if cache is not None and cache.is_updated.get(self.layer_idx, False):
                layer = cache.cross_attention_cache.layers[self.layer_idx]
                return layer.keys, layer.values
            key = self._split_heads(self.k_proj(key_value_states))  # (B, H, S, Dh)
            value = self._split_heads(self.v_proj(key_value_states))  # (B, H, S, Dh)
            if cache is not None:
                key, value = cache.cross_attention_cache.update(key, value, self.layer_idx)
                cache.is_updated[self.layer_idx] = True
            return key, value
        key = self._split_heads(self.k_proj(hidden_states))  # (B, H, T, Dh)
        value = self._split_heads(self.v_proj(hidden_states))  # (B, H, T, Dh)
        if cache is not None:
            self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
            key, value = self_cache.update(key, value, self.layer_idx)  # (B, H, past + T, Dh)
        return key, value


# ------------------------------------------------------------------------------------------------
# 5. Position-wise feed-forward network (§3.3, Eq. 2):  FFN(x) = max(0, x W_1 + b_1) W_2 + b_2
# ------------------------------------------------------------------------------------------------


class MiniformerFeedForward(nn.Module):
    def __init__(self, config: MiniformerConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, config.d_ff)  # W_1, b_1: D -> F
        # max(0, .) in the paper. Not in place: fc1's output is a view, and autograd's bookkeeping for an
        # in-place op on a view (CopySlices) costs more than the fresh tensor it saves.
        self.activation = ACT2FN[config.activation]
        self.activation_dropout = MiniformerDropout(config.activation_dropout)
        self.fc2 = nn.Linear(config.d_ff, config.d_model)  # W_2, b_2: F -> D

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.activation_dropout(self.activation(self.fc1(hidden_states)))  # (B, L, F)
        return self.fc2(hidden_states)  # (B, L, D)


# ------------------------------------------------------------------------------------------------
# 6. Residual connection and layer normalisation (§3.1, §5.4):
#    post-LN (paper): LayerNorm(x + Dropout(Sublayer(x)))
#    pre-LN (option): x + Dropout(Sublayer(LayerNorm(x)))
# ------------------------------------------------------------------------------------------------


class MiniformerSublayer(nn.Module):
    """Holds one sub-layer's LayerNorm and output dropout and applies the residual around it."""

    def __init__(self, config: MiniformerConfig):
        super().__init__()
        self.pre_norm = config.norm_placement == "pre"
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = MiniformerDropout(config.dropout)

    def sublayer_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(x) if self.pre_norm else x

    def forward(self, x: torch.Tensor, sublayer_output: torch.Tensor) -> torch.Tensor:
        x = self.dropout(sublayer_output, residual=x)  # x + Dropout(Sublayer(x)): (B, L, D)
        return x if self.pre_norm else self.layer_norm(x)


# ------------------------------------------------------------------------------------------------
# 7. Encoder and decoder layers (§3.1). The decoder's self-attention is masked so position t sees
#    only positions <= t (§3.2.3); its second sub-layer attends over the encoder output ("memory").
# ------------------------------------------------------------------------------------------------


class MiniformerEncoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: MiniformerConfig, layer_idx: int):
        super().__init__()
        self.self_attn = MiniformerAttention(config, layer_idx)
        self.self_attn_sublayer = MiniformerSublayer(config)
        self.ffn = MiniformerFeedForward(config)
        self.ffn_sublayer = MiniformerSublayer(config)

    def forward(self, hidden_states, mask=None, padding_mask=None, output_attentions: bool = False):
        attn_input = self.self_attn_sublayer.sublayer_input(hidden_states)
        attn_output, weights = self.self_attn(
            attn_input, mask=mask, output_attentions=output_attentions, padding_mask=padding_mask
        )
        hidden_states = self.self_attn_sublayer(hidden_states, attn_output)  # (B, S, D)
        hidden_states = self.ffn_sublayer(hidden_states, self.ffn(self.ffn_sublayer.sublayer_input(hidden_states)))
        return hidden_states, weights


class MiniformerDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: MiniformerConfig, layer_idx: int, has_cross_attention: bool = True):
        super().__init__()
        self.self_attn = MiniformerAttention(config, layer_idx)
        self.self_attn_sublayer = MiniformerSublayer(config)
        self.encoder_attn = MiniformerAttention(config, layer_idx, is_cross_attention=True) if has_cross_attention else None
        self.encoder_attn_sublayer = MiniformerSublayer(config) if has_cross_attention else None
        self.ffn = MiniformerFeedForward(config)
        self.ffn_sublayer = MiniformerSublayer(config)

    def forward(
        self,
        hidden_states,
        memory=None,
        self_mask=None,
        self_is_causal: bool = False,
        memory_mask=None,
        cache: Cache | None = None,
        output_attentions: bool = False,
        self_padding_mask=None,
        memory_padding_mask=None,
    ):
        attn_output, self_weights = self.self_attn(
            self.self_attn_sublayer.sublayer_input(hidden_states),
            mask=self_mask,
            is_causal=self_is_causal,
            cache=cache,
            output_attentions=output_attentions,
            padding_mask=self_padding_mask,
        )
        hidden_states = self.self_attn_sublayer(hidden_states, attn_output)  # (B, T, D)
        cross_weights = None
        if self.encoder_attn is not None:
            attn_output, cross_weights = self.encoder_attn(
                self.encoder_attn_sublayer.sublayer_input(hidden_states),
                key_value_states=memory,
                mask=memory_mask,
                cache=cache,
                output_attentions=output_attentions,
                padding_mask=memory_padding_mask,
            )
            hidden_states = self.encoder_attn_sublayer(hidden_states, attn_output)  # (B, T, D)
        hidden_states = self.ffn_sublayer(hidden_states, self.ffn(self.ffn_sublayer.sublayer_input(hidden_states)))
        return hidden_states, self_weights, cross_weights


# ------------------------------------------------------------------------------------------------
# 8. The stacks (§3.1): N identical layers each; with pre-LN a final LayerNorm closes each stack.
# ------------------------------------------------------------------------------------------------


def check_mask(mask: torch.Tensor | None, name: str, expected: tuple) -> None:
    if mask is None or _is_tracing():
        return
    if mask.dim() != 2 or tuple(mask.shape) != tuple(expected):
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)}, but the inputs need a 2D mask of shape {tuple(expected)} "
            "(batch, sequence length) with 1 for real tokens and 0 for padding."
        )


def padding_to_attention_mask(padding_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, K) 1/0 key mask -> (B, 1, 1, K) boolean, or None when every key is real (so fast kernels apply)."""
    if padding_mask is None:
        return None
    if not _is_tracing() and bool(padding_mask.all()):
        return None
    return padding_mask.bool()[:, None, None, :]  # (B, 1, 1, K)


class MiniformerEncoder(nn.Module):
    def __init__(self, config: MiniformerConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.config = config
        self.embeddings = MiniformerEmbeddings(config, embed_tokens)
        self.layers = nn.ModuleList(MiniformerEncoderLayer(config, i) for i in range(config.encoder_layers))
        self.final_layer_norm = (
            nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.norm_placement == "pre" else None
        )

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.embeddings.embed_tokens

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        inputs_embeds=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds to the encoder.")
        batch, src_len = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        check_mask(attention_mask, "attention_mask", (batch, src_len))
        hidden_states = self.embeddings(input_ids, inputs_embeds)  # (B, S, D)
        mask = padding_to_attention_mask(attention_mask)  # (B, 1, 1, S) or None

        all_hidden, all_weights = [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden_states)
            hidden_states, weights = layer(
                hidden_states, mask, padding_mask=attention_mask, output_attentions=bool(output_attentions)
            )
            if output_attentions:
                all_weights.append(weights)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        output = BaseModelOutput(
            last_hidden_state=hidden_states,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_weights) if output_attentions else None,
        )
        return output if return_dict is not False else output.to_tuple()


class MiniformerDecoder(nn.Module):
    def __init__(self, config: MiniformerConfig, embed_tokens: nn.Embedding, has_cross_attention: bool = True):
        super().__init__()
        self.config = config
        self.has_cross_attention = has_cross_attention
        self.embeddings = MiniformerEmbeddings(config, embed_tokens)
        self.layers = nn.ModuleList(
            MiniformerDecoderLayer(config, i, has_cross_attention) for i in range(config.decoder_layers)
        )
        self.final_layer_norm = (
            nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.norm_placement == "pre" else None
        )

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.embeddings.embed_tokens

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        cache: Cache | None = None,
        inputs_embeds=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of decoder_input_ids or decoder_inputs_embeds to the decoder.")
        batch, tgt_len = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        if use_cache and cache is None:
            cache = (
                EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
                if encoder_hidden_states is not None
                else DynamicCache(config=self.config)
            )
        self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        past_len = self_cache.get_seq_length() if self_cache is not None else 0
        if self.has_cross_attention and encoder_hidden_states is None:
            raise ValueError(
                "This decoder attends over the encoder output: pass encoder_hidden_states (B, S, D), or use "
                "MiniformerForCausalLM for a decoder without cross-attention."
            )
        prepared_mask = attention_mask is not None and attention_mask.dim() == 4
        if not prepared_mask:
            check_mask(attention_mask, "decoder_attention_mask", (batch, past_len + tgt_len))
        if encoder_hidden_states is not None:
            check_mask(encoder_attention_mask, "attention_mask", (batch, encoder_hidden_states.shape[1]))

        hidden_states = self.embeddings(input_ids, inputs_embeds, offset=past_len)  # (B, T, D)
        if prepared_mask:
            # generate() builds the whole (B, 1, T, K) mask, causal rule included, for static (compilable)
            # caches, whose K is the cache's full length: boolean (True attends) or additive (0 attends).
            self_mask = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
            self_is_causal, attention_mask = False, None
        else:
            self_mask, self_is_causal = self._self_attention_mask(
                attention_mask, tgt_len, past_len, hidden_states.device
            )
        memory_mask = padding_to_attention_mask(encoder_attention_mask)  # (B, 1, 1, S) or None

        all_hidden, all_self, all_cross = [], [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden_states)
            hidden_states, self_weights, cross_weights = layer(
                hidden_states,
                encoder_hidden_states,
                self_mask,
                self_is_causal,
                memory_mask,
                cache=cache,
                output_attentions=bool(output_attentions),
                self_padding_mask=attention_mask,
                memory_padding_mask=encoder_attention_mask,
            )
            if output_attentions:
                all_self.append(self_weights)
                all_cross.append(cross_weights)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        has_cross = encoder_hidden_states is not None and output_attentions
        output = BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            cache=cache if use_cache else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_self) if output_attentions else None,
            cross_attentions=tuple(all_cross) if has_cross else None,
        )
        return output if return_dict is not False else output.to_tuple()

    @staticmethod
    def _self_attention_mask(padding_mask, tgt_len: int, past_len: int, device):
        """Returns (mask, is_causal): the causal rule of §3.2.3 combined with target padding."""
        padding = padding_to_attention_mask(padding_mask)  # (B, 1, 1, K) or None
        if padding is None and past_len == 0:
            return None, True  # the kernels' own causal path
        if padding is None and tgt_len == 1:
            return None, False  # one new query may see every cached key
        mask = causal_mask(tgt_len, past_len + tgt_len, device)[None, None]  # (1, 1, T, K)
        return (mask if padding is None else mask & padding), False


# ------------------------------------------------------------------------------------------------
# 9. Hugging Face model classes and heads
# ------------------------------------------------------------------------------------------------


@dataclass
class MiniformerAttentionWeights(ModelOutput):
    """Attention weights per layer, each (B, H, query, key): what `plot_attention` and bertviz take."""

    encoder_attentions: tuple[torch.Tensor, ...] | None = None
    decoder_attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


def shift_tokens_right(input_ids: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Teacher forcing: the decoder reads <start> y_1 .. y_{T-1} and predicts y_1 .. y_T."""
    if decoder_start_token_id is None:
        raise ValueError("config.decoder_start_token_id is not set; it is needed to build decoder_input_ids.")
    check_ids_shape(input_ids)
    shifted = input_ids.new_empty(input_ids.shape)
    shifted[:, 1:] = input_ids[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)  # labels use -100 for ignored positions


def renamed_cache(cache: Cache | None, past_key_values: Cache | None) -> Cache | None:
    """transformers 5.24 renamed `past_key_values` to `cache`; the old name still works, with a warning."""
    if past_key_values is None:
        return cache
    if cache is not None:
        raise ValueError("Pass the key/value cache once, as `cache` (`past_key_values` is its deprecated name).")
    if not _is_tracing():
        warnings.warn("`past_key_values` is deprecated: pass `cache` instead.", FutureWarning, stacklevel=3)
    return past_key_values


class MiniformerPreTrainedModel(PreTrainedModel):
    config_class = MiniformerConfig
    config: MiniformerConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MiniformerEncoderLayer", "MiniformerDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _can_compile_fullgraph = True
    _input_embed_layer = "shared"  # transformers' embedding accessors look for this name

    def set_input_embeddings(self, value):
        # Heads hand the new table to their backbone, which points both stacks at it.
        self.model.set_input_embeddings(value)

    def resize_position_embeddings(self, new_num_position_embeddings: int) -> None:
        """Make every positional table cover `new_num_position_embeddings` positions (transformers' API, used
        e.g. by the example run_summarization.py when --max_source_length exceeds max_position_embeddings)."""
        std = self.config.init_std or self.config.d_model**-0.5
        for module in self.modules():
            if isinstance(module, MiniformerPositionalEncoding):
                module.resize(new_num_position_embeddings, std)
        self.config.max_position_embeddings = new_num_position_embeddings

    def get_position_embeddings(self) -> torch.Tensor | tuple[torch.Tensor, ...]:
        tables = tuple(
            module.weight if module.learned else module.table
            for module in self.modules()
            if isinstance(module, MiniformerPositionalEncoding)
        )
        return tables[0] if len(tables) == 1 else tables

    def _init_weights(self, module):
        std = self.config.init_std or self.config.d_model**-0.5
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, MiniformerPositionalEncoding):
            if module.learned:
                init.normal_(module.weight, mean=0.0, std=std)
            else:
                init.copy_(module.table, sinusoidal_table(module.max_positions, self.config.d_model))


class MiniformerModel(MiniformerPreTrainedModel):
    """The bare encoder-decoder, returning the decoder's last hidden state (B, T, D)."""

    def __init__(self, config: MiniformerConfig):
        super().__init__(config)
        self.shared = MiniformerScaledEmbedding(config)  # one (V, D) table for source and target (§3.4)
        self.encoder = MiniformerEncoder(config, self.shared)
        self.decoder = MiniformerDecoder(config, self.shared)
        self.post_init()

    def set_input_embeddings(self, value):
        self.shared = value
        self.encoder.embeddings.use_table(value)
        self.decoder.embeddings.use_table(value)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        encoder_outputs=None,
        cache: Cache | None = None,
        inputs_embeds=None,
        decoder_inputs_embeds=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        past_key_values: Cache | None = None,
        **kwargs,
    ):
        cache = renamed_cache(cache, past_key_values)
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        use_cache = (self.config.use_cache and not self.training) if use_cache is None else use_cache

        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError(
                    "No decoder inputs: pass decoder_input_ids (or labels), or pass input_ids so the decoder "
                    "inputs can be derived by shifting them right."
                )
            decoder_input_ids = shift_tokens_right(
                input_ids, self.config.pad_token_id, self.config.decoder_start_token_id
            )

        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(
                last_hidden_state=encoder_outputs[0],
                hidden_states=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
                attentions=encoder_outputs[2] if len(encoder_outputs) > 2 else None,
            )

        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        output = Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            cache=decoder_outputs.cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


class SoftmaxCrossEntropy(torch.autograd.Function):
    """Cross-entropy of logit rows against labels, summed over the rows whose label is not -100.

    The value is ``F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")``, computed as
    logsumexp(row) - row[label]. Nothing of size (N, V) is made besides the gradient itself: the forward
    keeps only each row's log-sum-exp, and the backward writes softmax(row) - onehot(label) straight into
    the gradient. Both work through blocks of rows about 1 MB in size, which stay in cache. Going through
    ``log_softmax`` instead (as ``F.cross_entropy`` does) makes two more fresh (N, V) tensors per step, and
    on CPU the first touch of fresh memory costs more than the arithmetic: in a tiny training step the loss
    takes 0.65 ms against 4.1 ms for ``F.cross_entropy``, and the saved log-probabilities, one (N, V) fp32
    tensor, no longer sit in memory until the backward.
    """

    @staticmethod
    def forward(ctx, logits, labels):
        rows = _rows_per_block(logits.shape[-1])
        log_sum_exp = logits.new_empty(logits.shape[0])  # (N,)
        for block, out in zip(logits.split(rows), log_sum_exp.split(rows)):
            torch.logsumexp(block, dim=1, out=out)
        targets = labels.clamp(min=0)[:, None]  # (N, 1); ignored rows are masked out below
        real = labels != -100  # (N,)
        ctx.save_for_backward(logits, log_sum_exp, targets, real)
        return ((log_sum_exp - logits.gather(1, targets).squeeze(1)) * real).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        logits, log_sum_exp, targets, real = ctx.saved_tensors
        rows = _rows_per_block(logits.shape[-1])
        row_scale = (grad_loss * real).to(logits.dtype)[:, None]  # (N, 1): 0 for ignored rows
        grad = torch.empty_like(logits)  # (N, V)
        minus_one = logits.new_full((rows, 1), -1.0)
        for out, block, lse, target, scale in zip(
            grad.split(rows), logits.split(rows), log_sum_exp.split(rows), targets.split(rows), row_scale.split(rows)
        ):
            torch.sub(block, lse[:, None], out=out).exp_()  # softmax(row)
            out.scatter_add_(1, target, minus_one[: len(target)])  # - onehot(label)
            out.mul_(scale)
        return grad, None


def _rows_per_block(vocab_size: int) -> int:
    return max(1, (1 << 20) // (4 * vocab_size))  # about 1 MB of fp32 logits per block


def check_labels(labels: torch.Tensor, vocab_size: int) -> None:
    # SoftmaxCrossEntropy clamps labels, so a stray negative label would silently train towards id 0.
    if _is_tracing() or labels.numel() == 0:
        return
    bad = labels[(labels != -100) & ((labels < 0) | (labels >= vocab_size))]
    if bad.numel():
        raise ValueError(
            f"Label {int(bad[0])} is outside the vocabulary: labels must lie in [0, {vocab_size - 1}] "
            f"(vocab_size={vocab_size}), or be -100 for positions the loss ignores. Check that the "
            "tokenizer matches the model."
        )


def token_cross_entropy(logits, labels, num_items_in_batch=None):
    """Mean cross-entropy over target tokens, ignoring -100 (or summed / num_items_in_batch, as Trainer asks).
    The heads validate `labels` with `check_labels` where they enter the model, once per forward."""
    logits = logits.float().reshape(-1, logits.shape[-1])  # (B*T, V)
    labels = labels.to(logits.device).reshape(-1)  # (B*T,)
    loss = SoftmaxCrossEntropy.apply(logits, labels)  # summed over real tokens
    if num_items_in_batch is None:
        return loss / (labels != -100).sum()  # the mean, as F.cross_entropy's (NaN if every label is -100)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


class MiniformerForConditionalGeneration(MiniformerPreTrainedModel, GenerationMixin):
    """Encoder-decoder with the pre-softmax projection tied to the shared embedding (§3.4)."""

    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}

    def __init__(self, config: MiniformerConfig | None = None, **kwargs):
        # The seed API: Transformer(vocab_size=1000, d_model=64, ...) builds its own config.
        if config is None:
            config = MiniformerConfig(**kwargs)
        elif kwargs:
            raise TypeError(
                f"Pass either a MiniformerConfig or keyword sizes, not both (got config and {sorted(kwargs)})."
            )
        super().__init__(config)
        self.model = MiniformerModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)  # pre-softmax projection: D -> V
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        encoder_outputs=None,
        cache: Cache | None = None,
        inputs_embeds=None,
        decoder_inputs_embeds=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        past_key_values: Cache | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ):
        """`labels` (B, T) give the cross-entropy loss (-100 ignored); without decoder inputs they are
        shifted right to make them, and without either the source is shifted (so `model(input_ids)` runs)."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        cache = renamed_cache(cache, past_key_values)
        if labels is not None:
            check_labels(labels, self.config.vocab_size)  # before the shift turns them into decoder inputs
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = outputs.last_hidden_state
        if logits_to_keep:
            hidden_states = hidden_states[:, -logits_to_keep:]
        logits = self.lm_head(hidden_states)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = token_cross_entropy(logits, labels, kwargs.get("num_items_in_batch"))
        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )
        return output if return_dict else output.to_tuple()

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def prepare_inputs_for_generation(
        self, input_ids, next_sequence_length=None, cache=None, attention_mask=None, is_first_iteration=False, **kwargs
    ):
        """GenerationMixin's per-step inputs, made here for a decoding step with a dynamic cache: the generic
        version also inspects `forward`'s signature on every step for remote-code models (a `cache_position`
        check that does not apply here), a tenth of a tiny model's step. Everything else goes to it."""
        simple_step = (
            not is_first_iteration
            and next_sequence_length is not None
            and isinstance(cache, Cache)
            and not cache.is_compileable
            and kwargs.get("inputs_embeds") is None
            and kwargs.get("decoder_position_ids") is None
            and input_ids.device == self.lm_head.weight.device
        )
        if not simple_step:
            return super().prepare_inputs_for_generation(
                input_ids, next_sequence_length, cache, attention_mask, is_first_iteration=is_first_iteration, **kwargs
            )
        model_inputs = {"decoder_input_ids": input_ids[:, -next_sequence_length:], "cache": cache}  # (B, 1)
        decoder_attention_mask = kwargs.pop("decoder_attention_mask", None)
        if decoder_attention_mask is not None:
            model_inputs["decoder_attention_mask"] = decoder_attention_mask
        if attention_mask is not None:
            model_inputs["attention_mask"] = attention_mask  # the source padding, for cross-attention
        for key, value in kwargs.items():
            if key not in ("labels", "inputs_embeds") and key not in model_inputs:
                model_inputs[key] = value
        return model_inputs

    @torch.no_grad()
    def get_attention_weights(self, input_ids, decoder_input_ids=None, attention_mask=None):
        """Encoder, decoder and cross attention per layer, each (B, H, query, key), whatever
        `attn_implementation` is set (the readable path computes them). Runs in eval mode."""
        was_training = self.training
        self.eval()
        try:
            outputs = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
                use_cache=False,
                output_attentions=True,
                return_dict=True,
            )
        finally:
            self.train(was_training)
        return MiniformerAttentionWeights(
            encoder_attentions=outputs.encoder_attentions,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
        )


class MiniformerClassificationHead(nn.Module):
    def __init__(self, config: MiniformerConfig):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.out_proj = nn.Linear(config.d_model, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        pooled = self.dropout(torch.tanh(self.dense(self.dropout(pooled))))  # (B, D)
        return self.out_proj(pooled)  # (B, num_labels)


class MiniformerForSequenceClassification(MiniformerPreTrainedModel):
    """Encoder-decoder classifier: the decoder reads the shifted source, and its state at the last real
    token (which has seen the whole sequence) feeds a small head. Returns loss and logits only."""

    def __init__(self, config: MiniformerConfig):
        super().__init__(config)
        self.model = MiniformerModel(config)
        self.classification_head = MiniformerClassificationHead(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        encoder_outputs=None,
        inputs_embeds=None,
        decoder_inputs_embeds=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if input_ids is None and inputs_embeds is None:
            raise ValueError("Pass input_ids or inputs_embeds to classify.")
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is not None:
                decoder_input_ids = shift_tokens_right(
                    input_ids, self.config.pad_token_id, self.config.decoder_start_token_id
                )
            else:
                start = torch.full(
                    (inputs_embeds.shape[0], 1), self.config.decoder_start_token_id, device=inputs_embeds.device
                )
                start_embeds = self.model.shared(start).to(inputs_embeds.dtype)  # (B, 1, D)
                decoder_inputs_embeds = torch.cat([start_embeds, inputs_embeds[:, :-1]], dim=1)  # (B, S, D)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=False,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = outputs.last_hidden_state  # (B, T, D)
        batch, length = hidden_states.shape[:2]
        if attention_mask is not None:
            # Index of the last real token in each row (works for right padding).
            last = (attention_mask.to(torch.long).sum(dim=1) - 1).clamp(min=0)  # (B,)
        else:
            last = torch.full((batch,), length - 1, device=hidden_states.device, dtype=torch.long)
        pooled = hidden_states[torch.arange(batch, device=hidden_states.device), last]  # (B, D)
        logits = self.classification_head(pooled)  # (B, num_labels)

        loss = None
        if labels is not None:
            loss = self._classification_loss(logits, labels)
        output = Seq2SeqSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )
        return output if return_dict else output.to_tuple()

    def _classification_loss(self, logits, labels):
        labels = labels.to(logits.device)
        if self.config.problem_type is None:
            if self.config.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            return F.mse_loss(logits.squeeze(-1), labels.squeeze(-1).to(logits.dtype))
        if self.config.problem_type == "single_label_classification":
            return F.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1))
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class MiniformerDecoderOnly(MiniformerPreTrainedModel):
    """The decoder stack and the shared table, named as in the encoder-decoder so any checkpoint loads."""

    def __init__(self, config: MiniformerConfig):
        super().__init__(config)
        self.shared = MiniformerScaledEmbedding(config)
        self.decoder = MiniformerDecoder(config, self.shared, has_cross_attention=False)
        self.post_init()

    def set_input_embeddings(self, value):
        self.shared = value
        self.decoder.embeddings.use_table(value)

    def forward(self, *args, **kwargs):
        return self.decoder(*args, **kwargs)


class MiniformerForCausalLM(MiniformerPreTrainedModel, GenerationMixin):
    """The decoder alone, without cross-attention, as a left-to-right language model."""

    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}

    def __init__(self, config: MiniformerConfig):
        config = copy.deepcopy(config)
        config.is_decoder = True
        config.is_encoder_decoder = False
        super().__init__(config)
        self.model = MiniformerDecoderOnly(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        cache: Cache | None = None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        past_key_values: Cache | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ):
        """`labels` are the inputs themselves: they are shifted inside, so position t predicts token t+1."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        cache = renamed_cache(cache, past_key_values)
        use_cache = (self.config.use_cache and not self.training) if use_cache is None else use_cache
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        outputs = self.model.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = outputs.last_hidden_state
        if logits_to_keep:
            hidden_states = hidden_states[:, -logits_to_keep:]
        logits = self.lm_head(hidden_states)  # (B, T, V)
        loss = None
        if labels is not None:
            check_labels(labels, self.config.vocab_size)
            shifted = kwargs.get("shift_labels")  # already aligned by a trainer that shards the sequence
            if shifted is None:
                shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]  # position t is scored on token t+1
            loss = token_cross_entropy(logits, shifted, kwargs.get("num_items_in_batch"))
        output = CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


# The seed API's name for the encoder-decoder with its language-modelling head.
Transformer = MiniformerForConditionalGeneration

__all__ = [
    "MiniformerAttentionWeights",
    "MiniformerForCausalLM",
    "MiniformerForConditionalGeneration",
    "MiniformerForSequenceClassification",
    "MiniformerModel",
    "MiniformerPreTrainedModel",
    "Transformer",
    "scaled_dot_product_attention",
    "shift_tokens_right",
    "sinusoidal_table",
]
