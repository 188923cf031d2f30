"""Speed kernels for Miniformer: faster twins of operations the paper file writes plainly.

This file travels with every saved checkpoint beside ``modeling_miniformer.py`` (which imports it
relatively, so ``save_pretrained`` copies it): it imports only ``torch`` and public ``transformers`` API.

The model uses these kernels when ``config.fast_kernels`` is True (the default); with False it runs
``nn.Dropout``, ``x + Dropout(y)``, ``F.cross_entropy`` and transformers' own "sdpa" function exactly as
the paper file writes them. The layers read the flag when the model is built (the loss and generate()'s
inputs on every call). Each kernel is tested equal to its plain twin in ``tests/test_modeling_kernels.py``
and ``tests/test_modeling_generation.py`` (values and gradients):

    FastDropout ............ nn.Dropout. On CPU it draws 16 random bits per element, so P_drop is rounded
                              to a multiple of 2^-16 (0.1 becomes 0.100006); elsewhere it is F.dropout.
    FusedSublayer .......... MiniformerSublayer, LayerNorm(x + Dropout(Sublayer(x))) (§3.1), with the
                              residual added as FastDropout drops, in one pass.
    SoftmaxCrossEntropy .... F.cross_entropy(logits, labels, ignore_index=-100, label_smoothing=eps,
                              reduction="sum"), without the (N, V) log-probabilities; used only from
                              FAST_LOSS_MIN_VOCAB tokens up, where it pays.
    DecodingStepInputsMixin  GenerationMixin's prepare_inputs_for_generation, built directly for the
                              decoding steps of generate() (dynamic and static caches).
    sdpa_attention ......... transformers' "sdpa" attention function, without the per-call checks for
                              features this model does not use; in a compiled CPU decoding step, the
                              paper file's Eq. 1 instead, which the compiler fuses (``fast_sdpa_for``).

Why they are on by default: they change no result beyond the dropout's 2^-16 rounding (a deviation listed
in the paper file with this flag) and make a CPU training step and eager generate() faster (see the
README's speed section), and transformers' compiled generation faster still; on other devices the
dropout and the sub-layer are the plain operations anyway.
"""

import torch
from torch import nn
from torch.nn import functional as F
from transformers.cache_utils import EncoderDecoderCache
from transformers.masking_utils import create_masks_for_generate


class FastDropout(nn.Dropout):
    """Dropout (§5.4): zero each element with probability p and scale the survivors by 1 / (1 - p).

    On CPU, ``nn.Dropout`` draws one Bernoulli sample per element, about 20 ns each: 14% of a tiny model's
    training step. Here each 64-bit random word gives four elements 16 uniform bits, so p is rounded to a
    multiple of 2^-16, and the 0/1 mask comes from clamps, which vectorise, rather than comparisons: the
    masks cost about a quarter as much. On other devices and under torch.compile (which generates its own
    masks) it is ``F.dropout``. Being an ``nn.Dropout``, tools that look for dropout modules still find it.
    """

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """Dropout(x); with `residual`, residual + Dropout(x) in one pass."""
        if self.training and self.p > 0.0:
            if x.device.type == "cpu" and not torch.compiler.is_compiling():
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


class DecodingStepInputsMixin:
    """GenerationMixin's per-step inputs, built directly for the decoding steps of ``generate()``.

    For a model registered as remote code, transformers' generic ``prepare_inputs_for_generation`` inspects
    ``forward``'s signature on every step (a ``cache_position`` check that does not apply here): about 8% of
    a tiny model's eager greedy ``generate()``, and more of a compiled one. Later steps with a dynamic or a
    static cache get the same inputs here (for a static cache, the 4D mask the generic version builds with
    ``create_masks_for_generate``); ``tests/test_modeling_generation.py`` compares them with the generic
    ones at every step. The first step, ``inputs_embeds``, position ids and anything unusual go to the
    generic version. It reads no weight attribute, so dynamically quantized and adapter-wrapped models
    take it too.
    """

    def prepare_inputs_for_generation(
        self, input_ids, next_sequence_length=None, cache=None, attention_mask=None, is_first_iteration=False, **kwargs
    ):
        simple_step = (
            not is_first_iteration
            and self.config.fast_kernels
            and next_sequence_length is not None
            and isinstance(cache, EncoderDecoderCache)
            and kwargs.get("inputs_embeds") is None
            and kwargs.get("decoder_position_ids") is None
        )
        if not simple_step:
            return super().prepare_inputs_for_generation(
                input_ids, next_sequence_length, cache, attention_mask, is_first_iteration=is_first_iteration, **kwargs
            )
        step_ids = input_ids[:, -next_sequence_length:]  # (B, 1)
        model_inputs = {"decoder_input_ids": step_ids, "cache": cache}
        decoder_attention_mask = kwargs.pop("decoder_attention_mask", None)
        if cache.is_compileable:  # a static cache: fixed strides and a (B, 1, 1, K) mask for the compiled step
            model_inputs["decoder_input_ids"] = step_ids.clone(memory_format=torch.contiguous_format)
            decoder_attention_mask = static_cache_step_mask(self, step_ids, decoder_attention_mask, cache)
        if decoder_attention_mask is not None:
            model_inputs["decoder_attention_mask"] = decoder_attention_mask
        if attention_mask is not None:
            model_inputs["attention_mask"] = attention_mask  # the source padding, for cross-attention
        for key, value in kwargs.items():
            if key not in ("labels", "inputs_embeds", "next_sequence_length") and key not in model_inputs:
                model_inputs[key] = value
        return model_inputs


def static_cache_step_mask(model, step_ids, decoder_attention_mask, cache):
    """The (B, 1, T, K) self-attention mask of a decoding step with a static cache, K its full length.

    Without decoder padding, under "sdpa", it is the causal rule over the cache's slots, built from the
    cache's length counter in three small operations: key k is seen by query t iff k <= past + t. That is
    what ``create_masks_for_generate`` returns there, at about a tenth of its cost (it is rebuilt outside the
    compiled graph on every step). Anything else goes to ``create_masks_for_generate``.
    """
    batch, query_len = step_ids.shape
    slot_count = getattr(cache.self_attention_cache.layers[0], "max_cache_len", None)  # K
    past = cache.self_attention_cache.get_seq_length()  # a tensor counter for transformers' static layers
    plain_sdpa = decoder_attention_mask is None and model.config._attn_implementation == "sdpa"
    if plain_sdpa and isinstance(slot_count, int) and torch.is_tensor(past):
        slots = torch.arange(slot_count, device=step_ids.device)  # (K,)
        queries = past + torch.arange(query_len, device=step_ids.device)  # (T,)
        return (slots[None, :] <= queries[:, None]).expand(batch, 1, query_len, -1).contiguous()  # (B, 1, T, K)
    make_masks = getattr(model, "create_masks_for_generate", create_masks_for_generate)
    mask = make_masks(
        config=model.config,
        inputs_embeds=torch.empty((batch, query_len, 0), dtype=model.dtype, device=step_ids.device),
        attention_mask=decoder_attention_mask,
        cache=cache,
        position_ids=None,
        block_sequence_ids=None,
        token_type_ids=None,
        mm_token_type_ids=None,
        is_first_iteration=False,
    )
    return mask.contiguous() if isinstance(mask, torch.Tensor) else mask


def sdpa_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=False, **kwargs):
    """transformers' "sdpa" attention function, cut down to what this model passes (no grouped-query heads,
    position bias or soft-capping): one ``F.scaled_dot_product_attention`` call, returning (B, T, H, Dh).
    transformers' version checks for each of those on every call: about 12 us, six calls per decoding step."""
    # A plain bool, decided without the query length: a SymBool under torch.export / ONNX export with dynamic shapes
    # is refused by F.scaled_dot_product_attention. The model asks for is_causal only with no cache (T == K), where
    # the causal rule is right for one query too.
    is_causal = bool(is_causal) and attention_mask is None
    output = F.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, is_causal=is_causal
    )  # (B, H, T, Dh)
    return output.transpose(1, 2), None


def fast_sdpa_for(query: torch.Tensor, plain_attention):
    """The twin used for "sdpa" with ``fast_kernels``: ``sdpa_attention`` above, except in a compiled decoding
    step on CPU (one query per row), which runs ``plain_attention``, Eq. 1 as the paper file writes it: the
    compiler fuses its two small matmuls and the softmax into the rest of the step, where the SDPA kernel
    stays an opaque call of about 30 us at a tiny model's shapes. Same values either way."""
    if torch.compiler.is_compiling() and query.shape[2] == 1 and query.device.type == "cpu":
        return plain_attention
    return sdpa_attention


def dropout_for(config, p: float) -> nn.Dropout:
    """§5.4's dropout: ``nn.Dropout``, or its faster twin when ``config.fast_kernels`` is on."""
    return FastDropout(p) if config.fast_kernels else nn.Dropout(p)


class SoftmaxCrossEntropy(torch.autograd.Function):
    """Label-smoothed cross-entropy of logit rows (N, V) against labels (N,), summed over rows whose label
    is not -100: ``F.cross_entropy(logits, labels, ignore_index=-100, label_smoothing=eps, reduction="sum")``.

    With smoothing eps (§5.4) the target is (1 - eps) on the label plus eps / V everywhere, so a row's loss
    is lse - (1 - eps) * row[label] - eps * mean(row), where lse = logsumexp(row), and its gradient is
    softmax(row) - (1 - eps) * onehot(label) - eps / V. Nothing of size (N, V) is made besides the gradient:
    the forward keeps each row's log-sum-exp, and the backward writes the gradient in place, through blocks
    of rows about 1 MB in size that stay in cache. ``F.cross_entropy`` goes through ``log_softmax``, two
    more fresh (N, V) tensors per step; on CPU the first touch of fresh memory costs more than the
    arithmetic (a tiny training step: 0.65 ms here against 4.1 ms).
    """

    @staticmethod
    def forward(ctx, logits, labels, label_smoothing: float = 0.0):
        rows = rows_per_block(logits.shape[-1])
        log_sum_exp = logits.new_empty(logits.shape[0])  # (N,)
        for block, out in zip(logits.split(rows), log_sum_exp.split(rows)):
            torch.logsumexp(block, dim=1, out=out)
        targets = labels.clamp(min=0)[:, None]  # (N, 1); ignored rows are masked out below
        real = labels != -100  # (N,)
        row_loss = log_sum_exp - (1.0 - label_smoothing) * logits.gather(1, targets).squeeze(1)  # (N,)
        if label_smoothing:
            row_loss = row_loss - label_smoothing * logits.mean(dim=1)  # (N,)
        ctx.label_smoothing = label_smoothing
        ctx.save_for_backward(logits, log_sum_exp, targets, real)
        return (row_loss * real).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        logits, log_sum_exp, targets, real = ctx.saved_tensors
        eps = ctx.label_smoothing
        rows = rows_per_block(logits.shape[-1])
        row_scale = (grad_loss * real).to(logits.dtype)[:, None]  # (N, 1): 0 for ignored rows
        grad = torch.empty_like(logits)  # (N, V)
        minus_on_label = logits.new_full((rows, 1), -(1.0 - eps))
        for out, block, lse, target, scale in zip(
            grad.split(rows), logits.split(rows), log_sum_exp.split(rows), targets.split(rows), row_scale.split(rows)
        ):
            torch.sub(block, lse[:, None], out=out).exp_()  # softmax(row)
            out.scatter_add_(1, target, minus_on_label[: len(target)])  # - (1 - eps) onehot(label)
            if eps:
                out.sub_(eps / logits.shape[1])  # - eps / V
            out.mul_(scale)
        return grad, None, None


class FusedSublayer(nn.Module):
    """Twin of the paper file's ``MiniformerSublayer`` (same weights, same names): the residual sum and the
    dropout in one pass, LayerNorm(FastDropout(Sublayer(x), residual=x)), or pre-LN's
    FastDropout(Sublayer(LayerNorm(x)), residual=x)."""

    def __init__(self, config):
        super().__init__()
        self.pre_norm = config.norm_placement == "pre"
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = FastDropout(config.dropout)

    def forward(self, x: torch.Tensor, sublayer) -> torch.Tensor:
        if self.pre_norm:
            return self.dropout(sublayer(self.layer_norm(x)), residual=x)
        return self.layer_norm(self.dropout(sublayer(x), residual=x))


# Below this vocabulary F.cross_entropy's (N, V) temporaries are small and its single call is faster than the
# blocked twin (measured fwd+bwd, eps 0.1, 1 thread, 2-core AMD EPYC under load: 1152 rows x 48 tokens, the main
# job's shape, 1.2-1.5 ms plain against 1.8-2.7 ms twin; 1024 x 1000, the tiny benchmark's, 17-28 ms against
# 15-19 ms; scripts/benchmark_loss.py).
FAST_LOSS_MIN_VOCAB = 1000


def rows_per_block(vocab_size: int) -> int:
    return max(1, (1 << 20) // (4 * vocab_size))  # about 1 MB of fp32 logits per block


def fast_cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """The summed (label-smoothed) cross-entropy of (N, V) fp32 logits; F.cross_entropy's under compile."""
    if torch.compiler.is_compiling():
        return F.cross_entropy(logits, labels, ignore_index=-100, label_smoothing=label_smoothing, reduction="sum")
    return SoftmaxCrossEntropy.apply(logits, labels, float(label_smoothing))


__all__ = ["FAST_LOSS_MIN_VOCAB", "DecodingStepInputsMixin", "FastDropout", "FusedSublayer", "SoftmaxCrossEntropy",
           "dropout_for", "fast_cross_entropy_sum", "fast_sdpa_for", "sdpa_attention", "static_cache_step_mask"]
