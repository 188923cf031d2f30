"""Miniformer: the encoder-decoder Transformer of Vaswani et al., "Attention Is All You Need" (2017),
https://arxiv.org/abs/1706.03762, written in paper order as a Hugging Face ``transformers`` model.

Contents (paper order)
    1. Positional encoding ............................ §3.5
    2. Embeddings (shared, scaled by sqrt(d_model)) ... §3.4
    3. Scaled dot-product attention ................... §3.2.1, Eq. 1
    4. Multi-head attention ........................... §3.2.2
    5. Position-wise feed-forward network ............. §3.3, Eq. 2
    6. Residual connection + LayerNorm sub-layer ...... §3.1
    7. Encoder and decoder layers, masking ............ §3.1, §3.2.3
    8. Encoder and decoder stacks ..................... §3.1
    9. The Hugging Face model, and the loss ........... §5.4 (label smoothing)
Beside it, and travelling with every checkpoint: ``heads_miniformer.py`` (classification and causal-LM heads),
``kernels_miniformer.py`` (faster twins of dropout, the sub-layer, the loss and generate()'s step inputs),
``support_miniformer.py`` (input checks, ``get_attention_weights``, checkpoint checks and the code files a save
writes, transformers' position-table API). None of them imports this file back, except the heads file, which
builds on it.

Two paths through this file:
    - the learner's path: the seed API ``Transformer(vocab_size=..., d_model=...)`` builds its config with
      ``fast_kernels=False`` and ``attn_implementation="eager"``, so a training step and ``generate()`` run this
      file's own code: ``scaled_dot_product_attention`` (Eq. 1), ``causal_mask``/``padding_mask`` (§3.2.3),
      ``MiniformerSublayer`` (§3.1), ``nn.Dropout`` and ``F.cross_entropy`` with label smoothing (§5.4).
      ``tests/test_modeling_miniformer.py`` traces one training step and one ``generate()`` step to prove it.
    - the practitioner's path (``MiniformerConfig()``, ``miniformer train``): ``fast_kernels=True`` and "sdpa".
      Each place where a faster twin replaces the plain code says so in a line marked ``TWIN:``, with what it
      buys and where the figure comes from. Every twin is tested equal to the plain code it replaces.

Shape legend: B batch, S source length, T target length (queries), K key length (S, or past + T with a
    cache), D = d_model, H = n_heads, Dh = D / H (the paper's d_k = d_v), F = d_ff, V = vocab_size.

Deviations from the paper and the field that switches each (off by default unless marked "(default)";
``MiniformerConfig``'s docstring lists every default that is not the paper's, and why)
    - ``norm_placement="pre"``: LayerNorm before each sub-layer plus a final LayerNorm per stack.
    - ``positional_encoding="learned"``: learned positions (the paper's Table 3, row E).
    - ``activation``: GELU/SiLU instead of ReLU in the feed-forward network.
    - ``attention_dropout`` / ``activation_dropout``: dropout the paper does not apply (default 0).
    - ``scale_embedding=False`` / ``tie_word_embeddings=False``: undo §3.4's scaling or sharing.
    - ``fast_kernels=True`` (default): dropout on CPU draws 16 random bits per element, so P_drop is
      rounded to a multiple of 2^-16 (0.1 becomes 0.100006); ``False`` runs ``nn.Dropout`` exactly.
    - ``attn_implementation="sdpa"`` (default): a fused kernel for Eq. 1; "eager" and compiled decoding steps
      (``fast_kernels``) run the function below.
    - Linear layers carry biases and are Xavier-initialised; embeddings are drawn from N(0, d_model^-0.5)
      (``init_std``) so that scaled embeddings start with unit variance. The paper is silent on both.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPastAndCrossAttentions
from transformers.modeling_outputs import Seq2SeqLMOutput, Seq2SeqModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import logging
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_miniformer import MiniformerConfig
from .kernels_miniformer import (DecodingStepInputsMixin, FusedSublayer, dropout_for, fast_cross_entropy_sum,
                                 fast_sdpa_for, FAST_LOSS_MIN_VOCAB)
from .support_miniformer import (AttentionWeightsMixin, CheckpointFilesMixin, MiniformerAttentionWeights,
                                 PositionTablesMixin, check_batch, check_decoder_source, check_ids_shape, check_labels,
                                 check_mask, check_memory, check_no_label_smoothing_argument, check_token_ids,
                                 select_hidden_states)

logger = logging.get_logger(__name__)


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
        else:  # not saved with the weights: it is a function of the config alone
            self.register_buffer("table", sinusoidal_table(self.max_positions, config.d_model), persistent=False)

    def forward(self, seq_len: int, offset: int | torch.Tensor = 0) -> torch.Tensor:
        if not torch.compiler.is_compiling() and offset + seq_len > self.max_positions:
            raise ValueError(
                f"Sequence reaches position {offset + seq_len}, but max_position_embeddings is "
                f"{self.max_positions}. Shorten the input (nothing is truncated silently) or build the model "
                "with a larger max_position_embeddings."
            )
        table = self.weight if self.learned else self.table
        positions = torch.arange(seq_len, device=table.device) + offset  # (L,); a gather works at a tensor offset
        return table[positions]  # (L, D)

    def resize(self, num_positions: int, std: float) -> None:
        """Cover `num_positions` positions: the sinusoids are recomputed; a learned table keeps its rows and
        draws the new ones from N(0, std)."""
        if self.learned:
            old = self.weight.data
            new = old.new_empty(num_positions, old.shape[1]).normal_(mean=0.0, std=std)  # (P, D)
            keep = min(num_positions, old.shape[0])
            new[:keep] = old[:keep]
            self.weight = nn.Parameter(new, requires_grad=self.weight.requires_grad)
        else:
            table = sinusoidal_table(num_positions, self.table.shape[1]).to(self.table.device, self.table.dtype)
            self.register_buffer("table", table, persistent=False)  # (P, D)
        self.max_positions = num_positions


# ------------------------------------------------------------------------------------------------
# 2. Embeddings (§3.4): one token table shared by source and target, multiplied by sqrt(d_model),
#    plus the positional encoding; dropout on the sum (§5.4).
# ------------------------------------------------------------------------------------------------


class MiniformerScaledEmbedding(nn.Embedding):
    """The token table, its lookups multiplied by sqrt(d_model) (§3.4), as `inputs_embeds` expects them."""

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
        # TWIN (fast_kernels): FastDropout for nn.Dropout, masks from 16 random bits (see MiniformerSublayer).
        self.dropout = dropout_for(config, config.dropout)

    def use_table(self, embed_tokens: nn.Embedding) -> None:
        # Registered once, as the model's `shared`: one name per weight, as transformers' saving and tying expect.
        self.__dict__["embed_tokens"] = embed_tokens

    def forward(self, input_ids=None, inputs_embeds=None, offset: int = 0) -> torch.Tensor:
        if inputs_embeds is None:
            check_token_ids(input_ids, self.embed_tokens.num_embeddings)
            inputs_embeds = self.embed_tokens(input_ids)  # scaled by sqrt(d_model): (B, L, D)
        positions = self.embed_positions(inputs_embeds.shape[1], offset)  # (L, D)
        return self.dropout(inputs_embeds + positions.to(inputs_embeds.dtype))  # (B, L, D)


# ------------------------------------------------------------------------------------------------
# 3. Scaled dot-product attention (§3.2.1, Eq. 1):  Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V
#    Masks are boolean and broadcast to (B, H, T, K): True where a query may attend to a key.
#    The fused form of the same equation, used with attn_implementation="sdpa" (the default), is one call:
#        F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=is_causal)
#    (transformers' "sdpa" function, or with fast_kernels its lean twin `sdpa_attention`); its default scale is
#    1 / sqrt(d_k), the one below. tests/test_modeling_kernels.py proves both equal to this function.
# ------------------------------------------------------------------------------------------------


def scaled_dot_product_attention(query, key, value, mask=None, dropout_p: float = 0.0, training: bool = False):
    """The readable path: returns the output (B, H, T, Dh) and the attention weights (B, H, T, K)."""
    d_k = query.shape[-1]
    scores = query @ key.transpose(-2, -1) / math.sqrt(d_k)  # (B, H, T, K): the only place 1/sqrt(d_k) is written
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # (B, H, T, K)
    weights = scores.softmax(dim=-1)  # (B, H, T, K)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)  # a row with nothing to attend to stays all zero
    weights = F.dropout(weights, p=dropout_p, training=training)  # (B, H, T, K)
    return weights @ value, weights  # (B, H, T, Dh), (B, H, T, K)


def eager_attention(module, query, key, value, attention_mask, dropout=0.0, is_causal=False, **kwargs):
    """Eq. 1 in transformers' attention interface: the same call as "sdpa" or any registered kernel."""
    if is_causal and attention_mask is None:
        attention_mask = causal_mask(query.shape[2], key.shape[2], query.device)  # (T, K)
    output, weights = scaled_dot_product_attention(query, key, value, attention_mask, dropout, module.training)
    return output.transpose(1, 2), weights  # (B, T, H, Dh), (B, H, T, K)


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
        self.head_dim = config.d_model // config.n_heads  # d_k = d_v = D / H
        self.is_causal = False  # read by transformers' attention kernels; passed per call as well
        self.fast_sdpa = config.fast_kernels  # "sdpa" through its lean twin (read once, as the sub-layers are)
        self.q_proj = nn.Linear(config.d_model, config.d_model)  # W^Q for all heads: D -> H*Dh
        self.k_proj = nn.Linear(config.d_model, config.d_model)  # W^K for all heads: D -> H*Dh
        self.v_proj = nn.Linear(config.d_model, config.d_model)  # W^V for all heads: D -> H*Dh
        self.out_proj = nn.Linear(config.d_model, config.d_model)  # W^O: H*Dh -> D

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, L, Dh)

    def forward(self, hidden_states, memory=None, mask=None, is_causal=False, cache=None, output_attentions=False):
        """Self-attention over `hidden_states`, or (with `memory`, the encoder output) cross-attention."""
        batch, query_len, _ = hidden_states.shape
        query = self.split_heads(self.q_proj(hidden_states))  # (B, H, T, Dh)
        key, value = self.keys_and_values(hidden_states if memory is None else memory, cache)  # (B, H, K, Dh)
        implementation = "eager" if output_attentions else (self.config._attn_implementation or "sdpa")
        if implementation == "sdpa" and self.fast_sdpa:
            # TWIN (fast_kernels): `sdpa_attention`, one F.scaled_dot_product_attention call without transformers'
            # per-call checks (12 us x 6 calls per decoding step); it took eager greedy generate() from 1.11x back
            # to 1.19-1.22x BART (README, benchmarks/benchmark_tiny_redesign.json). In a compiled CPU decoding
            # step it hands back Eq. 1 below, which the compiler fuses (compiled generate 1.83x its eager self).
            attention = fast_sdpa_for(query, eager_attention)
        else:  # Eq. 1 as written when weights are asked for, else config._attn_implementation (read per call)
            attention = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention)
        dropout = self.config.attention_dropout if self.training else 0.0
        # scaling=None: every attention function then scales by 1 / sqrt(d_k), as Eq. 1 does.
        output, weights = attention(self, query, key, value, mask, dropout=dropout, scaling=None,
                                    is_causal=is_causal)  # (B, T, H, Dh)
        output = output.reshape(batch, query_len, -1)  # Concat(head_1..head_h): (B, T, D)
        return self.out_proj(output), weights  # (B, T, D), (B, H, T, K) or None

    def keys_and_values(self, source: torch.Tensor, cache: Cache | None):
        if self.is_cross_attention and cache is not None and cache.is_updated.get(self.layer_idx, False):
            layer = cache.cross_attention_cache.layers[self.layer_idx]  # the memory, projected at the first step
            return layer.keys, layer.values
        key, value = self.split_heads(self.k_proj(source)), self.split_heads(self.v_proj(source))  # (B, H, L, Dh)
        if cache is None:
            return key, value
        if self.is_cross_attention:
            cache.is_updated[self.layer_idx] = True
            return cache.cross_attention_cache.update(key, value, self.layer_idx)  # (B, H, S, Dh)
        self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        return self_cache.update(key, value, self.layer_idx)  # (B, H, past + T, Dh)


# ------------------------------------------------------------------------------------------------
# 5. Position-wise feed-forward network (§3.3, Eq. 2):  FFN(x) = max(0, x W_1 + b_1) W_2 + b_2
# ------------------------------------------------------------------------------------------------


class MiniformerFeedForward(nn.Module):
    def __init__(self, config: MiniformerConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, config.d_ff)  # W_1, b_1: D -> F
        self.activation = ACT2FN[config.activation]  # max(0, .) in the paper
        self.activation_dropout = dropout_for(config, config.activation_dropout)
        self.fc2 = nn.Linear(config.d_ff, config.d_model)  # W_2, b_2: F -> D

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.activation_dropout(self.activation(self.fc1(hidden_states)))  # (B, L, F)
        return self.fc2(hidden_states)  # (B, L, D)


# ------------------------------------------------------------------------------------------------
# 6. Residual connection and layer normalisation (§3.1, with §5.4's dropout):
#    post-LN (paper): LayerNorm(x + Dropout(Sublayer(x)))
#    pre-LN (option): x + Dropout(Sublayer(LayerNorm(x)))
# ------------------------------------------------------------------------------------------------


class MiniformerSublayer(nn.Module):
    """Wraps one sub-layer (attention or feed-forward) in its residual connection and LayerNorm.

    TWIN (fast_kernels): ``FusedSublayer`` with ``FastDropout``: the same LayerNorm(x + Dropout(Sublayer(x))),
    the dropout mask from 16 random bits and the residual added as it drops (one ``addcmul``). nn.Dropout's
    per-element Bernoulli draws cost 8.3 ms of BART's tiny training step against the twin's 1.6 ms
    (benchmarks/profile_tiny.json, "dropout RNG"); with the other twins the tiny training step is 10-18% faster
    (issue 21's interleaved measurement at the seed size, quoted in README)."""

    def __init__(self, config: MiniformerConfig):
        super().__init__()
        self.pre_norm = config.norm_placement == "pre"
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, sublayer) -> torch.Tensor:
        if self.pre_norm:
            return x + self.dropout(sublayer(self.layer_norm(x)))  # x + Dropout(Sublayer(LayerNorm(x)))
        return self.layer_norm(x + self.dropout(sublayer(x)))  # LayerNorm(x + Dropout(Sublayer(x)))


# ------------------------------------------------------------------------------------------------
# 7. Encoder and decoder layers (§3.1). The decoder's self-attention is masked so position t sees
#    only positions <= t (§3.2.3); its second sub-layer attends over the encoder output ("memory").
#    Each attention returns (output, weights); the sub-layer takes the output, the layer keeps the weights.
# ------------------------------------------------------------------------------------------------


class MiniformerEncoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: MiniformerConfig, layer_idx: int):
        super().__init__()
        sublayer = FusedSublayer if config.fast_kernels else MiniformerSublayer  # TWIN: see MiniformerSublayer
        self.self_attn = MiniformerAttention(config, layer_idx)
        self.self_attn_sublayer = sublayer(config)
        self.ffn = MiniformerFeedForward(config)
        self.ffn_sublayer = sublayer(config)

    def forward(self, hidden_states, mask=None, output_attentions: bool = False):
        weights = {}

        def self_attention(x):  # the sub-layer; its attention weights are kept for output_attentions
            output, weights["self"] = self.self_attn(x, mask=mask, output_attentions=output_attentions)
            return output

        hidden_states = self.self_attn_sublayer(hidden_states, self_attention)  # (B, S, D)
        hidden_states = self.ffn_sublayer(hidden_states, self.ffn)  # (B, S, D)
        return hidden_states, weights["self"]


class MiniformerDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: MiniformerConfig, layer_idx: int, has_cross_attention: bool = True):
        super().__init__()
        sublayer = FusedSublayer if config.fast_kernels else MiniformerSublayer  # TWIN: see MiniformerSublayer
        self.self_attn = MiniformerAttention(config, layer_idx)
        self.self_attn_sublayer = sublayer(config)
        self.encoder_attn = MiniformerAttention(config, layer_idx, True) if has_cross_attention else None
        self.encoder_attn_sublayer = sublayer(config) if has_cross_attention else None
        self.ffn = MiniformerFeedForward(config)
        self.ffn_sublayer = sublayer(config)

    def forward(self, hidden_states, memory=None, masks=(None, False, None), cache=None, output_attentions=False):
        """`masks` is (self-attention mask, is_causal, memory mask), built once by the stack."""
        self_mask, is_causal, memory_mask = masks
        weights = {}

        def self_attention(x):  # masked (§3.2.3); keys and values come from x and the cache
            output, weights["self"] = self.self_attn(x, None, self_mask, is_causal, cache, output_attentions)
            return output

        def cross_attention(x):  # queries from x, keys and values from the memory
            output, weights["cross"] = self.encoder_attn(x, memory, memory_mask, False, cache, output_attentions)
            return output

        hidden_states = self.self_attn_sublayer(hidden_states, self_attention)  # (B, T, D)
        if self.encoder_attn is not None:
            hidden_states = self.encoder_attn_sublayer(hidden_states, cross_attention)  # (B, T, D)
        hidden_states = self.ffn_sublayer(hidden_states, self.ffn)  # (B, T, D)
        return hidden_states, weights["self"], weights.get("cross")


# ------------------------------------------------------------------------------------------------
# 8. The stacks (§3.1): N identical layers each; with pre-LN a final LayerNorm closes each stack.
#    Each stack builds its masks once and hands them to every layer.
# ------------------------------------------------------------------------------------------------


def padding_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, K) 1/0 key mask -> (B, 1, 1, K) boolean, or None when every key is real (so fast kernels apply).
    Compiled, exported or traced graphs always keep the mask: they must serve padded batches too."""
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()
    if mask is None or (not tracing and bool(mask.all())):
        return None
    return mask.bool()[:, None, None, :]  # (B, 1, 1, K)


def decoder_self_mask(mask: torch.Tensor | None, tgt_len: int, past_len: int, device):
    """(mask, is_causal) for decoder self-attention: §3.2.3's causal rule combined with target padding."""
    if mask is not None and mask.dim() == 4:
        # generate() builds the whole (B, 1, T, K) mask for static caches, whose K is the cache's full
        # length: boolean (True attends) or additive (0 attends).
        return (mask if mask.dtype == torch.bool else mask == 0), False
    padding = padding_mask(mask)  # (B, 1, 1, K) or None
    if padding is None and past_len == 0:
        return None, True  # the kernels' own causal path
    if padding is None and tgt_len == 1:
        return None, False  # one new query may see every cached key
    causal = causal_mask(tgt_len, past_len + tgt_len, device)[None, None]  # (1, 1, T, K)
    return (causal if padding is None else causal & padding), False


class MiniformerStack(nn.Module):
    """What the encoder and decoder share: the embeddings, the layers, and pre-LN's final LayerNorm."""

    def __init__(self, config: MiniformerConfig, embed_tokens: nn.Embedding, layers):
        super().__init__()
        self.config = config
        self.embeddings = MiniformerEmbeddings(config, embed_tokens)
        self.layers = nn.ModuleList(layers)
        pre_norm = config.norm_placement == "pre"
        self.final_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if pre_norm else None

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.embeddings.embed_tokens

    def run_layers(self, hidden_states, output_hidden_states, *args, **kwargs):
        """Every layer in turn; returns the last hidden state, all hidden states and each output's per-layer tuple."""
        all_hidden, per_layer = [], []
        for layer in self.layers:
            all_hidden.append(hidden_states)
            hidden_states, *weights = layer(hidden_states, *args, **kwargs)
            per_layer.append(weights)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        all_hidden.append(hidden_states)
        return hidden_states, select_hidden_states(all_hidden, output_hidden_states), tuple(zip(*per_layer))


class MiniformerEncoder(MiniformerStack):
    def __init__(self, config: MiniformerConfig, embed_tokens: nn.Embedding):
        super().__init__(config, embed_tokens, (MiniformerEncoderLayer(config, i) for i in range(config.encoder_layers)))

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds to the encoder.")
        batch, src_len = check_batch(input_ids if input_ids is not None else inputs_embeds, "input_ids")
        check_mask(attention_mask, "attention_mask", (batch, src_len))
        hidden_states = self.embeddings(input_ids, inputs_embeds)  # (B, S, D)
        hidden_states, all_hidden, (weights,) = self.run_layers(
            hidden_states, output_hidden_states, padding_mask(attention_mask), output_attentions=bool(output_attentions)
        )
        output = BaseModelOutput(hidden_states, all_hidden, weights if output_attentions else None)
        return output if return_dict is not False else output.to_tuple()


class MiniformerDecoder(MiniformerStack):
    def __init__(self, config: MiniformerConfig, embed_tokens: nn.Embedding, has_cross_attention: bool = True):
        layers = (MiniformerDecoderLayer(config, i, has_cross_attention) for i in range(config.decoder_layers))
        super().__init__(config, embed_tokens, layers)
        self.has_cross_attention = has_cross_attention

    def forward(self, input_ids=None, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                cache: Cache | None = None, inputs_embeds=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of decoder_input_ids or decoder_inputs_embeds to the decoder.")
        check_memory(encoder_hidden_states, self.has_cross_attention)
        name = "decoder_input_ids" if self.has_cross_attention else "input_ids"
        batch, tgt_len = check_batch(input_ids if input_ids is not None else inputs_embeds, name)
        if use_cache and cache is None:  # the memory's keys and values get a cache of their own
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache()) if self.has_cross_attention else DynamicCache()
        self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        past_len = self_cache.get_seq_length() if self_cache is not None else 0
        check_mask(attention_mask, "decoder_attention_mask", (batch, past_len + tgt_len))  # a 4D one from generate
        if encoder_hidden_states is not None:
            check_mask(encoder_attention_mask, "attention_mask", (batch, encoder_hidden_states.shape[1]))

        hidden_states = self.embeddings(input_ids, inputs_embeds, offset=past_len)  # (B, T, D)
        self_mask, is_causal = decoder_self_mask(attention_mask, tgt_len, past_len, hidden_states.device)
        masks = (self_mask, is_causal, padding_mask(encoder_attention_mask))
        hidden_states, all_hidden, (self_weights, cross_weights) = self.run_layers(
            hidden_states, output_hidden_states, encoder_hidden_states, masks, cache=cache,
            output_attentions=bool(output_attentions),
        )
        has_cross = encoder_hidden_states is not None and output_attentions
        output = BaseModelOutputWithPastAndCrossAttentions(
            hidden_states, cache if use_cache else None, all_hidden, self_weights if output_attentions else None,
            cross_weights if has_cross else None,
        )
        return output if return_dict is not False else output.to_tuple()


# ------------------------------------------------------------------------------------------------
# 9. The Hugging Face model classes, and the training loss with label smoothing (§5.4)
# ------------------------------------------------------------------------------------------------


def shift_tokens_right(input_ids: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Teacher forcing: the decoder reads <start> y_1 .. y_{T-1} and predicts y_1 .. y_T."""
    if decoder_start_token_id is None:
        raise ValueError("config.decoder_start_token_id is not set; it is needed to build decoder_input_ids.")
    check_ids_shape(input_ids)
    check_batch(input_ids, "labels or input_ids")
    shifted = input_ids.new_empty(input_ids.shape)
    shifted[:, 1:] = input_ids[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)  # labels use -100 for ignored positions


def token_cross_entropy(logits, labels, config: MiniformerConfig, num_items_in_batch=None):
    """Cross-entropy over target tokens with label smoothing eps_ls = config.label_smoothing (§5.4), ignoring -100
    labels: the mean, or the sum / num_items_in_batch when Trainer asks. A batch whose labels are all -100 gives
    loss 0 and zero gradients (not 0/0 = NaN), so it cannot poison the weights.

    Label smoothing (§5.4): the target distribution puts 1 - eps_ls on the label y and spreads eps_ls evenly over
    all V tokens, q(k) = (1 - eps_ls) [k = y] + eps_ls / V, and the loss is its cross-entropy with the model,
        loss = -sum_k q(k) log p(k) = (1 - eps_ls) (-log p(y)) + eps_ls * mean_k (-log p(k)),
    which is what F.cross_entropy(..., label_smoothing=eps_ls) computes."""
    eps = config.label_smoothing
    logits = logits.float().reshape(-1, logits.shape[-1])  # (B*T, V)
    labels = labels.to(logits.device).reshape(-1)  # (B*T,)
    if config.fast_kernels and logits.shape[-1] >= FAST_LOSS_MIN_VOCAB:
        # TWIN (fast_kernels, vocabularies of 1000 tokens or more): SoftmaxCrossEntropy, the same sum without the
        # (N, V) log-probabilities: 0.65 ms of the tiny benchmark's step against 4.1 ms for BART's loss
        # (benchmarks/profile_tiny.json); at the main job's ~50-token vocabulary F.cross_entropy is faster.
        loss = fast_cross_entropy_sum(logits, labels, eps)
    else:
        loss = F.cross_entropy(logits, labels, ignore_index=-100, label_smoothing=eps, reduction="sum")
    if num_items_in_batch is None:
        return loss / (labels != -100).sum().clamp(min=1)
    if torch.is_tensor(num_items_in_batch):  # Trainer's count over the accumulated batches; 0 if all ignored
        return loss / num_items_in_batch.to(loss.device).clamp(min=1)
    return loss / max(num_items_in_batch, 1)


class MiniformerPreTrainedModel(CheckpointFilesMixin, PositionTablesMixin, PreTrainedModel):
    """What every head shares. The mixins (support_miniformer.py) check a run folder's ``checksums.json`` in
    ``from_pretrained`` and make ``save_pretrained`` write every code file the saved ``config.json`` names."""

    config: MiniformerConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MiniformerEncoderLayer", "MiniformerDecoderLayer"]
    _supports_sdpa = True
    _can_compile_fullgraph = True
    _input_embed_layer = "shared"  # transformers' embedding accessors look for this name

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)  # the backbone points both stacks at the new table

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
        elif isinstance(module, MiniformerPositionalEncoding) and module.learned:
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, MiniformerPositionalEncoding):
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

    @deprecate_kwarg("past_key_values", "5.24.0", new_name="cache", warn_if_greater_or_equal_version=True)
    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, cache: Cache | None = None, inputs_embeds=None, decoder_inputs_embeds=None,
                use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.return_dict if return_dict is None else return_dict
        use_cache = (config.use_cache and not self.training) if use_cache is None else use_cache
        if decoder_input_ids is None and decoder_inputs_embeds is None:  # the seed's model(ids): shift the source
            check_decoder_source(input_ids)
            logger.warning_once(
                "No decoder inputs (decoder_input_ids or labels) were given, so the decoder reads the source "
                "input_ids shifted right (the seed API's model(input_ids)); its outputs and cross-attention are "
                "those of the source attending to itself. Pass labels=target_ids (or decoder_input_ids) for a real "
                "source/target pair."
            )
            decoder_input_ids = shift_tokens_right(input_ids, config.pad_token_id, config.decoder_start_token_id)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids, attention_mask, inputs_embeds, output_attentions,
                                           output_hidden_states, return_dict=True)
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(*encoder_outputs[:3])
        decoder_outputs = self.decoder(decoder_input_ids, decoder_attention_mask, encoder_outputs.last_hidden_state,
                                       attention_mask, cache, decoder_inputs_embeds, use_cache, output_attentions,
                                       output_hidden_states, return_dict=True)
        output = Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state, cache=decoder_outputs.cache,
            decoder_hidden_states=decoder_outputs.hidden_states, decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions, encoder_attentions=encoder_outputs.attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state, encoder_hidden_states=encoder_outputs.hidden_states,
        )
        return output if return_dict else output.to_tuple()


class MiniformerForConditionalGeneration(AttentionWeightsMixin, DecodingStepInputsMixin, MiniformerPreTrainedModel,
                                         GenerationMixin):
    """Encoder-decoder with the pre-softmax projection tied to the shared embedding (§3.4); the mixins add
    `get_attention_weights` and, with fast_kernels, generate()'s per-step inputs.

    The seed API, ``Transformer(vocab_size=1000, d_model=64, ...)`` (keyword sizes, no config), is the learner's
    path: it builds ``MiniformerConfig(fast_kernels=False, attn_implementation="eager", ...)`` unless you pass those
    two yourself, so every step runs this file's own code. ``MiniformerForConditionalGeneration(MiniformerConfig())``
    and ``miniformer train`` are the practitioner's path (fast twins, "sdpa"): same results, faster.

    TWIN (fast_kernels): ``DecodingStepInputsMixin`` builds generate()'s per-step inputs directly, where
    GenerationMixin's generic ``prepare_inputs_for_generation`` inspects ``forward``'s signature on every step (7.5%
    of generate() for a remote-code model): eager greedy generate() went from 1.09x to 1.19x BART (README).
    """

    # How transformers ties the two names (in post_init, after loading and resizing); the tie is written out in __init__.
    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}

    def __init__(self, config: MiniformerConfig | None = None, **kwargs):
        if config is None:  # the seed API: Transformer(vocab_size=1000, d_model=64, ...) builds its own config
            config = MiniformerConfig(**{"fast_kernels": False, "attn_implementation": "eager", **kwargs})
        elif kwargs:
            raise TypeError(f"Pass either a MiniformerConfig or keyword sizes, not both (got config and {sorted(kwargs)}).")
        super().__init__(config)
        self.model = MiniformerModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)  # pre-softmax projection: D -> V
        self.post_init()  # initialises every weight, then ties the names in _tied_weights_keys (below)
        if config.tie_word_embeddings and not self.lm_head.weight.is_meta:  # (from_pretrained ties after loading)
            self.lm_head.weight = self.model.shared.weight  # §3.4: the pre-softmax projection IS the shared embedding

    @deprecate_kwarg("past_key_values", "5.24.0", new_name="cache", warn_if_greater_or_equal_version=True)
    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, cache: Cache | None = None, inputs_embeds=None, decoder_inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                logits_to_keep: int = 0, **kwargs):
        """`labels` (B, T) give the cross-entropy loss (-100 ignored, smoothed by `config.label_smoothing`, §5.4);
        without decoder inputs they are shifted right to make them (teacher forcing). With neither labels nor
        decoder inputs, the decoder reads the source `input_ids` shifted right (the seed API; logged once)."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        check_no_label_smoothing_argument(kwargs)
        if labels is not None:
            source = input_ids if input_ids is not None else inputs_embeds
            check_labels(labels, self.config.vocab_size, None if source is None else source.shape[0])
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
                             cache, inputs_embeds, decoder_inputs_embeds, use_cache, output_attentions,
                             output_hidden_states, return_dict=True)
        hidden_states = outputs.last_hidden_state[:, -logits_to_keep:]  # 0 keeps all: (B, T, D)
        logits = self.lm_head(hidden_states)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = token_cross_entropy(logits, labels, self.config, kwargs.get("num_items_in_batch"))
        model_fields = {key: value for key, value in outputs.items() if key != "last_hidden_state"}
        output = Seq2SeqLMOutput(loss=loss, logits=logits, **model_fields)  # the cache and the encoder's outputs
        return output if return_dict else output.to_tuple()

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)


Transformer = MiniformerForConditionalGeneration  # the seed API's name for the encoder-decoder with its LM head


__all__ = ["MiniformerAttentionWeights", "MiniformerForConditionalGeneration", "MiniformerModel",
           "MiniformerPreTrainedModel", "Transformer", "causal_mask", "padding_mask", "scaled_dot_product_attention",
           "shift_tokens_right", "sinusoidal_table", "token_cross_entropy"]
