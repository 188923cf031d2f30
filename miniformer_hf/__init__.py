"""Miniformer: the encoder-decoder Transformer of "Attention Is All You Need" as a native
Hugging Face ``transformers`` model.

Importing this package registers the configuration and every head with the ``transformers`` Auto
classes, and marks them so that ``save_pretrained`` copies the code files (configuration, modeling, heads and
kernels) beside the weights. It also registers the seq2seq pipeline (``pipeline_miniformer.py``) with
transformers' ``PIPELINE_REGISTRY``, and every saved ``MiniformerForConditionalGeneration`` carries it: the file
beside the weights and ``custom_pipelines`` in its ``config.json``, so
``pipeline(model=folder_or_repo, trust_remote_code=True)`` works without this package.

One exception keeps the command line quick: when the process was started as the ``miniformer``
command (or ``python -m miniformer_hf.cli``), the model and ``transformers`` are imported (and
registered) only when a command first needs them, so ``miniformer --help`` answers at once. Any
public name (``miniformer_hf.MiniformerConfig`` ...) imports and registers them on first use.
"""

import copy
import os
import shutil
import sys

__version__ = "0.1.0"

# Names provided by the configuration, modeling, heads and pipeline files; reading any of them imports and registers.
_MODEL_NAMES = (
    "MiniformerAttentionWeights",
    "MiniformerConfig",
    "MiniformerForCausalLM",
    "MiniformerForConditionalGeneration",
    "MiniformerForSequenceClassification",
    "MiniformerModel",
    "MiniformerPreTrainedModel",
    "MiniformerSeq2SeqPipeline",
    "Transformer",
)

# In this process, `pipeline(PIPELINE_TASK, model=model, tokenizer=tokenizer)` runs the pipeline on objects in memory.
# The name is our own: registering "text-generation" would replace transformers' pipeline for every other model.
PIPELINE_TASK = "miniformer-text2text"
PIPELINE_FILE = "pipeline_miniformer.py"


def _save_with_pipeline(self, save_directory, *args, **kwargs):
    """`save_pretrained`, plus the pipeline: its file beside the model code and `custom_pipelines` in config.json.

    transformers copies a model's own module (and its relative imports) into the folder; the pipeline is no part of
    the model, so it is added here, before the save, so that `save_pretrained(..., push_to_hub=True)` and
    `push_to_hub` upload it too.
    """
    from . import modeling_miniformer, pipeline_miniformer

    if kwargs.get("is_main_process", True) and not os.path.isfile(save_directory):
        os.makedirs(save_directory, exist_ok=True)
        shutil.copyfile(pipeline_miniformer.__file__, os.path.join(save_directory, PIPELINE_FILE))
    # Only for this save: the config object may be shared with another head, whose checkpoint must not claim it.
    had_pipelines, previous = hasattr(self.config, "custom_pipelines"), getattr(self.config, "custom_pipelines", None)
    self.config.custom_pipelines = copy.deepcopy(pipeline_miniformer.CUSTOM_PIPELINES)
    try:
        return super(modeling_miniformer.MiniformerForConditionalGeneration, self).save_pretrained(
            save_directory, *args, **kwargs
        )
    finally:
        if had_pipelines:
            self.config.custom_pipelines = previous
        else:
            del self.config.custom_pipelines


def _register() -> None:
    """Import the model and register it with the Auto classes and the pipeline registry (idempotent)."""
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
    )
    from transformers.pipelines import PIPELINE_REGISTRY

    from . import configuration_miniformer, heads_miniformer, modeling_miniformer, pipeline_miniformer

    config_class = configuration_miniformer.MiniformerConfig
    auto_classes = {
        AutoModel: modeling_miniformer.MiniformerModel,
        AutoModelForSeq2SeqLM: modeling_miniformer.MiniformerForConditionalGeneration,
        AutoModelForSequenceClassification: heads_miniformer.MiniformerForSequenceClassification,
        AutoModelForCausalLM: heads_miniformer.MiniformerForCausalLM,
    }
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    config_class.register_for_auto_class("AutoConfig")
    for auto_class, model_class in auto_classes.items():
        auto_class.register(config_class, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK,
        pipeline_class=pipeline_miniformer.MiniformerSeq2SeqPipeline,
        pt_model=AutoModelForSeq2SeqLM,
        type="text",
    )
    modeling_miniformer.MiniformerForConditionalGeneration.save_pretrained = _save_with_pipeline
    globals()["AUTO_CLASSES"] = auto_classes
    for name in _MODEL_NAMES:
        for module in (configuration_miniformer, modeling_miniformer, heads_miniformer, pipeline_miniformer):
            if hasattr(module, name):
                globals()[name] = getattr(module, name)
                break


def _started_as_the_command_line() -> bool:
    """True in the ``miniformer`` console script and in ``python -m miniformer_hf.cli``."""
    if os.path.basename(sys.argv[0] if sys.argv else "").removesuffix(".exe") == "miniformer":
        return True
    original = list(getattr(sys, "orig_argv", []))
    return any(a == "-m" and b in ("miniformer_hf.cli", "miniformer.cli") for a, b in zip(original, original[1:]))


if not _started_as_the_command_line():
    _register()


def __getattr__(name):
    if name in _MODEL_NAMES or name == "AUTO_CLASSES":
        _register()
        return globals()[name]
    # The trainer pulls in datasets/accelerate machinery; import it only when asked for.
    if name == "TransformerTrainer":
        from .training import TransformerTrainer

        return TransformerTrainer
    raise AttributeError(f"module 'miniformer_hf' has no attribute {name!r}")


__all__ = [*_MODEL_NAMES, "TransformerTrainer"]
