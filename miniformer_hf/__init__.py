"""Miniformer: the encoder-decoder Transformer of "Attention Is All You Need" as a native
Hugging Face ``transformers`` model.

Importing this package registers the configuration and every head with the ``transformers`` Auto
classes, and marks them so that ``save_pretrained`` copies the code files beside the weights. It also registers
the seq2seq pipeline (``pipeline_miniformer.py``) with transformers' ``PIPELINE_REGISTRY``, and every saved
``MiniformerForConditionalGeneration`` carries it: the file beside the weights and ``custom_pipelines`` in its
``config.json``, so ``pipeline(model=folder_or_repo, trust_remote_code=True)`` works without this package.
"""

import copy
import os
import shutil

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_miniformer import MiniformerConfig
from .modeling_miniformer import (
    MiniformerAttentionWeights,
    MiniformerForCausalLM,
    MiniformerForConditionalGeneration,
    MiniformerForSequenceClassification,
    MiniformerModel,
    MiniformerPreTrainedModel,
    Transformer,
)
from . import pipeline_miniformer
from .pipeline_miniformer import MiniformerSeq2SeqPipeline

__version__ = "0.1.0"

AUTO_CLASSES = {
    AutoModel: MiniformerModel,
    AutoModelForSeq2SeqLM: MiniformerForConditionalGeneration,
    AutoModelForSequenceClassification: MiniformerForSequenceClassification,
    AutoModelForCausalLM: MiniformerForCausalLM,
}


# In this process, `pipeline(PIPELINE_TASK, model=model, tokenizer=tokenizer)` runs the pipeline on objects in memory.
# The name is our own: registering "text-generation" would replace transformers' pipeline for every other model.
PIPELINE_TASK = "miniformer-text2text"
PIPELINE_FILE = os.path.basename(pipeline_miniformer.__file__)


def _save_with_pipeline(self, save_directory, *args, **kwargs):
    """`save_pretrained`, plus the pipeline: its file beside the model code and `custom_pipelines` in config.json.

    transformers copies a model's own module (and its relative imports) into the folder; the pipeline is no part of
    the model, so it is added here, before the save, so that `save_pretrained(..., push_to_hub=True)` and
    `push_to_hub` upload it too.
    """
    if kwargs.get("is_main_process", True) and not os.path.isfile(save_directory):
        os.makedirs(save_directory, exist_ok=True)
        shutil.copyfile(pipeline_miniformer.__file__, os.path.join(save_directory, PIPELINE_FILE))
    # Only for this save: the config object may be shared with another head, whose checkpoint must not claim it.
    had_pipelines, previous = hasattr(self.config, "custom_pipelines"), getattr(self.config, "custom_pipelines", None)
    self.config.custom_pipelines = copy.deepcopy(pipeline_miniformer.CUSTOM_PIPELINES)
    try:
        return super(MiniformerForConditionalGeneration, self).save_pretrained(save_directory, *args, **kwargs)
    finally:
        if had_pipelines:
            self.config.custom_pipelines = previous
        else:
            del self.config.custom_pipelines


def _register() -> None:
    AutoConfig.register(MiniformerConfig.model_type, MiniformerConfig, exist_ok=True)
    MiniformerConfig.register_for_auto_class("AutoConfig")
    for auto_class, model_class in AUTO_CLASSES.items():
        auto_class.register(MiniformerConfig, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK, pipeline_class=MiniformerSeq2SeqPipeline, pt_model=AutoModelForSeq2SeqLM, type="text"
    )
    MiniformerForConditionalGeneration.save_pretrained = _save_with_pipeline


_register()


def __getattr__(name):
    # The trainer pulls in datasets/accelerate machinery; import it only when asked for.
    if name == "TransformerTrainer":
        from .training import TransformerTrainer

        return TransformerTrainer
    raise AttributeError(f"module 'miniformer_hf' has no attribute {name!r}")


__all__ = [
    "MiniformerAttentionWeights",
    "MiniformerConfig",
    "MiniformerForCausalLM",
    "MiniformerForConditionalGeneration",
    "MiniformerForSequenceClassification",
    "MiniformerModel",
    "MiniformerPreTrainedModel",
    "MiniformerSeq2SeqPipeline",
    "Transformer",
    "TransformerTrainer",
]
