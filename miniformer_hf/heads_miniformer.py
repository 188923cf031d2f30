"""Miniformer's other heads: sequence classification and a decoder-only causal language model.

This file travels with every saved checkpoint beside ``modeling_miniformer.py`` (``save_pretrained`` writes every
code file the saved ``config.json`` names: see ``support_miniformer.CheckpointFilesMixin``): any Miniformer
checkpoint loads into either head with ``trust_remote_code=True``. It builds on the modeling file, which never
imports it back. The paper's model and the seq2seq head are in ``modeling_miniformer.py``.
"""

import copy

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GenerationMixin
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions, Seq2SeqSequenceClassifierOutput
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_miniformer import MiniformerConfig
from .modeling_miniformer import (
    MiniformerDecoder,
    MiniformerModel,
    MiniformerPreTrainedModel,
    MiniformerScaledEmbedding,
    shift_tokens_right,
    token_cross_entropy,
)
from .support_miniformer import check_batch, check_labels, check_no_label_smoothing_argument


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
    token (which has seen the whole sequence) feeds a small head. Returns the fields BART's classifier does."""

    def __init__(self, config: MiniformerConfig):
        super().__init__(config)
        self.model = MiniformerModel(config)
        self.classification_head = MiniformerClassificationHead(config)
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.24.0", new_name="cache", warn_if_greater_or_equal_version=True)
    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, inputs_embeds=None, decoder_inputs_embeds=None, labels=None,
                cache: Cache | None = None, use_cache=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if input_ids is None and inputs_embeds is None:
            raise ValueError("Pass input_ids or inputs_embeds to classify.")
        if labels is not None:
            use_cache = False  # as BART's classifier: a training step keeps no cache
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is not None:
                decoder_input_ids = shift_tokens_right(
                    input_ids, self.config.pad_token_id, self.config.decoder_start_token_id
                )
            else:
                check_batch(inputs_embeds, "inputs_embeds")
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
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = outputs.last_hidden_state  # (B, T, D)
        batch, length = hidden_states.shape[:2]
        if attention_mask is not None and attention_mask.shape[1] == length:
            # Index of the last real token in each row (right padding).
            last = (attention_mask.to(torch.long).sum(dim=1) - 1).clamp(min=0)  # (B,)
        else:
            last = torch.full((batch,), length - 1, device=hidden_states.device, dtype=torch.long)
        pooled = hidden_states[torch.arange(batch, device=hidden_states.device), last]  # (B, D)
        logits = self.classification_head(pooled)  # (B, num_labels)

        loss = None
        if labels is not None:
            loss = self.classification_loss(logits, labels)
        output = Seq2SeqSequenceClassifierOutput(
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

    def classification_loss(self, logits, labels):
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

    @deprecate_kwarg("past_key_values", "5.24.0", new_name="cache", warn_if_greater_or_equal_version=True)
    def forward(self, input_ids=None, attention_mask=None, cache: Cache | None = None, inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                logits_to_keep: int = 0, **kwargs):
        """`labels` are the inputs themselves: they are shifted inside, so position t predicts token t+1."""
        config = self.config
        check_no_label_smoothing_argument(kwargs)
        return_dict = config.return_dict if return_dict is None else return_dict
        use_cache = (config.use_cache and not self.training) if use_cache is None else use_cache
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
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
        logits = self.lm_head(outputs.last_hidden_state[:, -logits_to_keep:])  # 0 keeps all: (B, T, V)
        loss = None
        if labels is not None:
            source = input_ids if input_ids is not None else inputs_embeds
            check_labels(labels, config.vocab_size, None if source is None else source.shape[0])
            shifted = kwargs.get("shift_labels")  # already aligned by a trainer that shards the sequence
            if shifted is None:
                shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]  # position t is scored on token t+1
            loss = token_cross_entropy(logits, shifted, config, kwargs.get("num_items_in_batch"))
        output = CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


__all__ = ["MiniformerForCausalLM", "MiniformerForSequenceClassification"]
