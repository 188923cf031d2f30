"""A text-to-text pipeline for Miniformer's encoder-decoder, on transformers 5.

transformers 5 removed the ``text2text-generation``, ``translation`` and ``summarization`` pipelines that served
encoder-decoder models. This file brings one back for Miniformer, the way transformers supports custom pipelines:
it travels with every saved ``MiniformerForConditionalGeneration`` checkpoint (beside the model's code files), and
the checkpoint's ``config.json`` names it under ``custom_pipelines``, so a stranger without ``miniformer_hf`` runs::

    from transformers import pipeline

    translate = pipeline(model="you/miniformer-dates", trust_remote_code=True)
    translate("3 de marzo de 1998")            # [{'generated_text': '1998-03-03'}]
    translate(["3 March 1998", "1/2/2003"], batch_size=2, num_beams=4, max_new_tokens=16)

The task key is ``text-generation`` (the Hub's tag for text-to-text models since ``text2text-generation`` went), so
``pipeline("text-generation", model=checkpoint, trust_remote_code=True)`` also runs the encoder-decoder here
instead of loading the decoder alone as a causal LM.

Inputs are strings (one, a list, a generator or a dataset); the encoder reads each whole and the decoder writes the
answer, which is returned without the input (``return_full_text`` does not apply to an encoder-decoder). Each input
gives a list of ``{"generated_text": ...}`` (one per ``num_return_sequences``); ``return_tensors=True`` adds
``"generated_token_ids"`` and ``return_text=False`` drops the text. Every other keyword argument is a generation
parameter (``num_beams``, ``max_new_tokens``, ``do_sample``, ``top_k``, ``generation_config`` ...), at construction or
per call, as for transformers' own generation pipelines; ``batch_size``, ``num_workers`` and ``device`` behave as
in every pipeline.

Like the modeling files, this file imports only the standard library, ``torch`` and public ``transformers`` API.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Pipeline
from transformers.utils import ModelOutput

# The task this pipeline answers in a checkpoint's `custom_pipelines`, and the Auto class that loads its model.
TASK = "text-generation"
MODEL_AUTO_CLASS = "AutoModelForSeq2SeqLM"
SEQ2SEQ_HEAD = "MiniformerForConditionalGeneration"


class MiniformerPipelineError(ValueError):
    """The pipeline was given something it cannot run; the message says what and how to fix it."""


class MiniformerSeq2SeqPipeline(Pipeline):
    """Text in, generated text out, for ``MiniformerForConditionalGeneration`` (see the module docstring)."""

    _pipeline_calls_generate = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = self.model.config
        model_class = type(self.model).__name__
        if getattr(config, "model_type", None) != "miniformer":
            raise MiniformerPipelineError(
                f"MiniformerSeq2SeqPipeline runs Miniformer encoder-decoder models; got a {model_class} (model_type "
                f"{getattr(config, 'model_type', None)!r}). For other models use transformers' own pipelines."
            )
        if SEQ2SEQ_HEAD not in {cls.__name__ for cls in type(self.model).__mro__}:
            raise MiniformerPipelineError(
                f"MiniformerSeq2SeqPipeline needs the encoder-decoder head {SEQ2SEQ_HEAD}; got {model_class}. Load the "
                f"checkpoint with {MODEL_AUTO_CLASS}.from_pretrained(..., trust_remote_code=True) or pass its folder "
                "or repo id as model=."
            )
        if self.tokenizer is None:
            raise MiniformerPipelineError(
                "MiniformerSeq2SeqPipeline needs the checkpoint's tokenizer; pass tokenizer=AutoTokenizer."
                "from_pretrained(<the model's folder or repo id>)."
            )
        check_generation_parameters(dict(getattr(self, "_generate_kwargs", None) or {}))  # those given at construction
        bad = [name for name, tensor in self.model.state_dict().items()
               if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
        if bad:
            raise MiniformerPipelineError(
                f"The model has {len(bad)} weight tensor(s) holding NaN or infinity (first: {bad[0]}), so its outputs "
                "would be meaningless; retrain it, or load an earlier checkpoint."
            )

    def _sanitize_parameters(
        self,
        return_text: bool | None = None,
        return_tensors: bool | None = None,
        return_full_text: bool | None = None,
        clean_up_tokenization_spaces: bool | None = None,
        truncation: bool | None = None,
        **generate_kwargs: Any,
    ):
        if return_full_text:
            raise MiniformerPipelineError(
                "return_full_text=True does not apply to an encoder-decoder: the output is the answer, not a "
                "continuation of the input; drop the argument."
            )
        check_generation_parameters(generate_kwargs)
        preprocess_params = {} if truncation is None else {"truncation": truncation}
        postprocess_params = {}
        if return_text is not None:
            postprocess_params["return_text"] = return_text
        if return_tensors is not None:
            postprocess_params["return_tensors"] = return_tensors
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return preprocess_params, generate_kwargs, postprocess_params

    def preprocess(self, inputs: Any, truncation: bool = False) -> dict[str, torch.Tensor]:
        if not isinstance(inputs, str):
            raise MiniformerPipelineError(
                f"MiniformerSeq2SeqPipeline takes text: a string, or a list, generator or dataset of strings; got a "
                f"{type(inputs).__name__} ({inputs!r:.60})."
            )
        if not inputs.strip():
            raise MiniformerPipelineError(
                f"MiniformerSeq2SeqPipeline got {'an empty string' if not inputs else 'only whitespace'} ({inputs!r}); "
                "give it some text (`miniformer generate` refuses empty text too)."
            )
        limit = self.model.config.max_position_embeddings
        encoded = self.tokenizer(inputs, return_tensors="pt", truncation=truncation, max_length=limit)
        length = encoded["input_ids"].shape[-1]
        if length > limit:
            raise MiniformerPipelineError(
                f"The input is {length} tokens long but the model reads at most {limit} (max_position_embeddings); "
                "shorten it, or pass truncation=True to cut it."
            )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def _forward(self, model_inputs: dict[str, torch.Tensor], **generate_kwargs: Any) -> dict[str, torch.Tensor]:
        batch_size = model_inputs["input_ids"].shape[0]
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        output = self.model.generate(**model_inputs, **generate_kwargs)
        sequences = output.sequences if isinstance(output, ModelOutput) else output  # (B * num_return, T)
        # One row per input, so the pipeline can split a batch back into its inputs: (B, num_return, T).
        return {"output_ids": sequences.reshape(batch_size, -1, sequences.shape[-1])}

    def postprocess(
        self,
        model_outputs: dict[str, torch.Tensor],
        return_text: bool = True,
        return_tensors: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> list[dict[str, Any]]:
        records = []
        for output_ids in model_outputs["output_ids"][0]:
            record = {}
            if return_tensors:
                record["generated_token_ids"] = output_ids.tolist()
            if return_text:
                record["generated_text"] = self.tokenizer.decode(
                    output_ids, skip_special_tokens=True, clean_up_tokenization_spaces=clean_up_tokenization_spaces
                )
            records.append(record)
        return records


def check_generation_parameters(generate_kwargs: dict[str, Any], generation_config=None) -> None:
    """One clear error for counts that generate() would only fail on deep inside (num_beams=0 divides by zero)."""
    config = generate_kwargs.get("generation_config") or generation_config
    for name in ("num_beams", "num_return_sequences", "max_new_tokens", "num_beam_groups"):
        value = generate_kwargs[name] if name in generate_kwargs else getattr(config, name, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MiniformerPipelineError(f"{name}={value!r} is invalid: expected a positive integer (1 or more).")


# What a checkpoint's config.json says under `custom_pipelines` so that `pipeline()` finds this class.
CUSTOM_PIPELINES = {
    TASK: {
        "impl": f"{__name__.rsplit('.', 1)[-1]}.{MiniformerSeq2SeqPipeline.__name__}",
        "pt": [MODEL_AUTO_CLASS],
        "type": "text",
    }
}
